package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	// The stores the broker opens by URL, with persist.Open: each
	// registers its schemes (sqlite, postgres, mysql, redis, mongodb, ...).
	_ "github.com/mqttpersist/mqttpersist/mongostore"
	_ "github.com/mqttpersist/mqttpersist/redisstore"
	_ "github.com/mqttpersist/mqttpersist/sqlstore"
)

// openedStore is one store of the config, open and migrated, and the
// pipeline the rules write to it through.
type openedStore struct {
	name    string
	display string // URL without password
	store   persist.Store
	pipe    *persist.Pipeline
	outbox  string // the async pipeline's outbox directory
}

type openedStores struct {
	list   []*openedStore
	byName map[string]*openedStore
}

// openStores opens and migrates every store of the config; an error names
// the store and its URL (without password), and closes what was opened. A
// database that cannot be reached yet is tried again, every second, until
// wait has passed (0: not at all).
func openStores(ctx context.Context, urls map[string]string, wait time.Duration, log *slog.Logger) (*openedStores, error) {
	deadline := time.Now().Add(wait)
	names := make([]string, 0, len(urls))
	for name := range urls {
		names = append(names, name)
	}
	sort.Strings(names)
	out := &openedStores{byName: map[string]*openedStore{}}
	for _, name := range names {
		s, err := openStore(ctx, urls[name])
		for logged := false; err != nil && persist.IsRetryable(err) && time.Now().Before(deadline); {
			if !logged {
				log.Warn("store unreachable; trying again every second", "store", name, "wait", wait, "error", err)
				logged = true
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
			s, err = openStore(ctx, urls[name])
		}
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("store %q: %w", name, err)
		}
		o := &openedStore{name: name, display: persist.Redact(urls[name]), store: s}
		out.list = append(out.list, o)
		out.byName[name] = o
	}
	return out, nil
}

// openStore opens the store of one URL through persist.Open, with the
// store package registered for its scheme (the blank imports above; a new
// store needs only its import), and creates its schema when it has one
// (persist.Migrator). A Redis URL takes ?prefix=NAME to start every key
// with NAME instead of "mqtt", so several brokers (or tests) can share one
// Redis.
func openStore(ctx context.Context, u string) (persist.Store, error) {
	s, err := persist.Open(ctx, u)
	if err != nil {
		return nil, err
	}
	if m, ok := s.(persist.Migrator); ok {
		if err := m.Migrate(ctx); err != nil {
			if c, ok := s.(persist.Closer); ok {
				c.Close()
			}
			return nil, err
		}
	}
	return s, nil
}

// writeSettings are how the stores are written: the -mode, -outbox,
// -outbox-bytes and -overflow flags (or config keys).
type writeSettings struct {
	mode        persist.WriteMode
	outbox      string // directory; each store gets the subdirectory of its name
	outboxBytes int64
	overflow    persist.Overflow
}

// startPipelines puts every store behind a persist.Pipeline written as ws
// says, which the rules name instead of the store: an async pipeline keeps
// its outbox in ws.outbox/NAME, and each pipeline pings its store every 2 s
// and logs when it goes down and comes back. On error, the pipelines
// already started are closed.
func (o *openedStores) startPipelines(ws writeSettings, log *slog.Logger) error {
	for _, s := range o.list {
		opts := &persist.PipelineOptions{
			Name:        s.name,
			Mode:        ws.mode,
			OutboxBytes: ws.outboxBytes,
			Overflow:    ws.overflow,
			Health:      2 * time.Second,
			Logger:      log,
		}
		if ws.mode == persist.Async {
			if s.name == "." || s.name == ".." || strings.ContainsAny(s.name, `/\`) {
				o.closePipelines(log)
				return fmt.Errorf("store %q: the name cannot be an outbox directory (no / \\, . or ..)", s.name)
			}
			opts.Outbox = filepath.Join(ws.outbox, s.name)
			s.outbox = opts.Outbox
		}
		p, err := persist.NewPipeline(s.store, opts)
		if err != nil {
			o.closePipelines(log)
			return fmt.Errorf("store %q: %w", s.name, err)
		}
		s.pipe = p
	}
	return nil
}

// closePipelines closes every pipeline: each writes what it has queued
// for up to its drain deadline; what is left stays in its outbox for the
// next start (the pipeline logs how much).
func (o *openedStores) closePipelines(log *slog.Logger) {
	for _, s := range o.list {
		if s.pipe == nil {
			continue
		}
		if err := s.pipe.Close(); err != nil {
			log.Warn("close pipeline", "store", s.name, "error", err)
		}
	}
}

// mode describes how a store is written, for the startup lines.
func (s *openedStore) mode() string {
	if s.pipe == nil || s.pipe.Mode() == persist.Durable {
		return "durable"
	}
	return "async, outbox " + s.outbox
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
