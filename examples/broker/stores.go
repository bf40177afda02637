package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// openedStore is one store of the config, open and migrated.
type openedStore struct {
	name    string
	display string // URL without password
	store   persist.Store
}

type openedStores struct {
	list   []*openedStore
	byName map[string]*openedStore
}

// openStores opens and migrates every store of the config; an error names
// the store and its URL (without password), and closes what was opened.
func openStores(ctx context.Context, urls map[string]string) (*openedStores, error) {
	names := make([]string, 0, len(urls))
	for name := range urls {
		names = append(names, name)
	}
	sort.Strings(names)
	out := &openedStores{byName: map[string]*openedStore{}}
	for _, name := range names {
		s, err := openStore(ctx, urls[name])
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("store %q: %w", name, err)
		}
		o := &openedStore{name: name, display: redact(urls[name]), store: s}
		out.list = append(out.list, o)
		out.byName[name] = o
	}
	return out, nil
}

// openStore opens the store of one URL by its scheme and creates its schema.
func openStore(ctx context.Context, u string) (persist.Store, error) {
	scheme, _, ok := strings.Cut(u, ":")
	if !ok {
		return nil, fmt.Errorf("%q is not a store URL (want sqlite://PATH, postgres://…, mysql://…, redis://…)", redact(u))
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3", "postgres", "postgresql", "mysql", "mariadb":
		s, err := sqlstore.Open(ctx, u, nil)
		if err != nil {
			return nil, err
		}
		if err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	case "redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster":
		// ?prefix=NAME starts every key with NAME instead of "mqtt", so
		// several brokers (or tests) can share one Redis.
		rest, prefix, err := cutParam(u, "prefix")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", redact(u), err)
		}
		return redisstore.Open(ctx, rest, &redisstore.Options{Prefix: prefix})
	}
	return nil, fmt.Errorf("%s: unknown scheme %q (want sqlite, postgres, mysql, redis, redis+sentinel, redis+cluster)", redact(u), scheme)
}

func (o *openedStores) names() string {
	var n []string
	for _, s := range o.list {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

// Close closes every store.
func (o *openedStores) Close() error {
	var errs []error
	for _, s := range o.list {
		if c, ok := s.store.(persist.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// expirer is a store that deletes its expired messages on request (fanout
// messages leave only by expiry).
type expirer interface {
	DeleteExpired(ctx context.Context) (int64, error)
}

// expireLoop deletes expired messages from every store that can, once a
// minute, until ctx is done.
func (o *openedStores) expireLoop(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range o.list {
			e, ok := s.store.(expirer)
			if !ok {
				continue
			}
			callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			n, err := e.DeleteExpired(callCtx)
			cancel()
			if err != nil {
				log.Warn("delete expired messages", "store", s.name, "error", err)
			} else if n > 0 {
				log.Debug("deleted expired messages", "store", s.name, "rows", n)
			}
		}
	}
}

// cutParam removes the query parameter name from u and returns its value.
func cutParam(u, name string) (rest, value string, err error) {
	base, query, ok := strings.Cut(u, "?")
	if !ok {
		return u, "", nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("bad query %q: %w", query, err)
	}
	value = q.Get(name)
	q.Del(name)
	if len(q) == 0 {
		return base, value, nil
	}
	return base + "?" + q.Encode(), value, nil
}

// redact hides the password of a URL for messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}
