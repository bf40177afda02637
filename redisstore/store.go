package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// storeName names this store in errors.
const storeName = "redisstore"

// Defaults of Options.
const (
	// DefaultPrefix is the seeds' key prefix: mqtt:client:…, mqtt:msg:….
	DefaultPrefix = "mqtt"
	// DefaultChannel is the seeds' channel for subscribe and unsubscribe
	// events.
	DefaultChannel = "mqtt_channel"
	// DefaultExpiredAfter is the seeds' expired_after: how long a stored
	// message (and a fanout cursor) lives in Redis.
	DefaultExpiredAfter = 3600 * time.Second
)

// Options configure a Store; the zero value and nil mean the defaults.
type Options struct {
	// Prefix starts every key, followed by ':' ("mqtt" gives
	// mqtt:client:test). "" means DefaultPrefix.
	Prefix string
	// Channel is where subscribe and unsubscribe events are PUBLISHed as
	// JSON. "" means DefaultChannel (zero Options are the defaults), so
	// NoEvents, not an empty Channel, turns the events off.
	Channel string
	// NoEvents turns the subscribe and unsubscribe events off.
	NoEvents bool
	// ExpiredAfter is how long a stored message lives at most, counted
	// from the Publish that wrote it (the seeds' expired_after): its keys
	// get a TTL of the earlier of this and Message.Expiry. Fanout cursors
	// get the same TTL from each ack. 0 means DefaultExpiredAfter; a
	// negative value keeps messages until their Message.Expiry (forever
	// when that is zero).
	ExpiredAfter time.Duration
	// FetchChunk is how many messages FetchOffline reads (or claims) per
	// round trip. 0 means 1000.
	FetchChunk int
}

// Store is a persist.Store (with ClientLookup, SubscriptionLookup,
// RetainLookup, Pinger, Closer, Limiter, Watcher and Claimer) on Redis in the seeds' key layout, safe
// for concurrent use. It works the same on a single server, a Sentinel
// failover client and a Redis Cluster (see the package doc).
type Store struct {
	kit     *storekit.Kit // the contract's shared half: gate, checks, errors
	c       redis.UniversalClient
	k       keys
	channel string
	events  bool
	ttl     time.Duration // 0: no TTL
	chunk   int
	own     bool // Open made c: Close closes it

	watches storekit.Watches // open watches: Close closes them

	noticeMu  sync.Mutex
	notices   map[string]string // Cluster: topic → node of the notices to send
	notifying bool              // a goroutine sends them
}

var (
	_ persist.Store              = (*Store)(nil)
	_ persist.ClientLookup       = (*Store)(nil)
	_ persist.SubscriptionLookup = (*Store)(nil)
	_ persist.RetainLookup       = (*Store)(nil)
	_ persist.Pinger             = (*Store)(nil)
	_ persist.Closer             = (*Store)(nil)
	_ persist.Limiter            = (*Store)(nil)
	_ persist.Watcher            = (*Store)(nil)
	_ persist.Claimer            = (*Store)(nil)
)

// New returns a store on client — a *redis.Client, a Sentinel failover
// client (redis.NewFailoverClient) or a *redis.ClusterClient — that the
// caller keeps owning (Close leaves it open); it does not touch the
// server, and nil opts means the defaults.
func New(client redis.UniversalClient, opts *Options) (*Store, error) {
	if client == nil {
		return nil, invalid("New", "client is nil")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	switch {
	case o.ExpiredAfter == 0:
		o.ExpiredAfter = DefaultExpiredAfter
	case o.ExpiredAfter < 0:
		o.ExpiredAfter = 0
	case o.ExpiredAfter < time.Millisecond:
		return nil, invalid("New", "Options.ExpiredAfter is %v, less than a millisecond", o.ExpiredAfter)
	}
	switch {
	case o.FetchChunk < 0:
		return nil, invalid("New", "Options.FetchChunk is %d, less than 0", o.FetchChunk)
	case o.FetchChunk == 0:
		o.FetchChunk = 1000
	}
	return &Store{
		// Redis keeps strings and payloads far larger than MQTT's (512 MB):
		// MQTT's own limits apply.
		kit:     storekit.New(storeName, persist.Limits{}, classify),
		c:       client,
		k:       newKeys(o.Prefix),
		channel: o.Channel,
		events:  !o.NoEvents,
		ttl:     o.ExpiredAfter,
		chunk:   o.FetchChunk,
	}, nil
}

// Redis returns the Redis client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.c }

// Prefix returns the key prefix in use, without the trailing ':'.
func (s *Store) Prefix() string { return s.k.prefix }

// Limits returns the sizes the store keeps: MQTT's own (the zero Limits).
func (s *Store) Limits() persist.Limits { return s.kit.Limits() }

// Ping checks that the server answers (every master of a Cluster).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.kit.Ping(ctx); err != nil {
		return err
	}
	var err error
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	} else {
		err = s.c.Ping(ctx).Err()
	}
	return s.kit.Fail(ctx, "Ping", err)
}

// Close makes every later call fail with persist.ErrClosed, ends the
// store's watches and closes the client if Open made it; closing again
// returns nil.
func (s *Store) Close() error {
	if !s.kit.Close() {
		return nil
	}
	s.watches.CloseAll()
	if s.own {
		if err := s.c.Close(); err != nil {
			return s.kit.Error("Close", nil, "", err)
		}
	}
	return nil
}

// enter is the kit's Enter (for actions.go).
func (s *Store) enter(ctx context.Context, op string) error { return s.kit.Enter(ctx, op) }

// fail is the kit's Fail (for actions.go).
func (s *Store) fail(ctx context.Context, op string, err error) error {
	return s.kit.Fail(ctx, op, err)
}

// invalid returns an error of op matching persist.ErrInvalid, caused by
// the formatted text (for New and actions.go, which have no kit entry).
func invalid(op, format string, args ...any) error {
	return &persist.Error{Store: storeName, Op: op, Kind: persist.ErrInvalid, Err: fmt.Errorf(format, args...)}
}
