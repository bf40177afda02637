package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// Store is a persist.Store (with ClientLookup, SubscriptionLookup,
// RetainLookup, Pinger, Closer, Limiter and Watcher) on SQL tables shaped
// like the seeds', safe for concurrent use.
type Store struct {
	// kit is the shared half of the store: the closed gate, the checks
	// and preparation of every verb's input, the post-filter of reads and
	// the style of errors.
	kit *storekit.Kit
	gdb *gorm.DB
	db  *sql.DB
	d   dialect
	t   tables
	opt Options
	own bool // Open made db: Close closes it

	migMu sync.Mutex
	// wmu serializes this store's writes on SQLite, which has one writer
	// at a time anyway: waiting here is cheaper than SQLITE_BUSY retries.
	wmu sync.Mutex

	q      queries
	insMu  sync.RWMutex
	sqlBy  map[string]string // statements by kind and row counts (see cached)
	subByN map[int]string    // Subscribed upsert by row count

	// note is PostgreSQL's cache of the watches' filters, for the
	// notifications of Publish (nil elsewhere).
	note *notifier
	// watches are the store's open watches, closed by Close.
	watches storekit.Watches
	// claims counts Claim calls (every so many deletes the claims that
	// ran out).
	claims atomic.Uint64
	// taken are the counter positions this store's Publish calls took,
	// for the polling watch.
	taken spans
}

var (
	_ persist.Store              = (*Store)(nil)
	_ persist.ClientLookup       = (*Store)(nil)
	_ persist.SubscriptionLookup = (*Store)(nil)
	_ persist.RetainLookup       = (*Store)(nil)
	_ persist.Pinger             = (*Store)(nil)
	_ persist.Closer             = (*Store)(nil)
	_ persist.Limiter            = (*Store)(nil)
)

// limits are what the tables keep (see MaxTopicLen and the others).
var limits = persist.Limits{ClientID: MaxClientIDLen, Topic: MaxTopicLen, Text: MaxStringLen, ID: MaxIDLen}

// New returns a store on db, a SQLite (github.com/glebarez/sqlite), PostgreSQL
// or MySQL gorm database that the caller keeps owning (Close leaves it open);
// it does not touch the database, and nil opts means the defaults.
func New(db *gorm.DB, opts *Options) (*Store, error) {
	if db == nil {
		return nil, persist.Errorf(persist.ErrInvalid, "sqlstore: New: db is nil")
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, persist.Errorf(persist.ErrInvalid, "sqlstore: New: db has no *sql.DB (inside a transaction?): %v", err)
	}
	d := dialectOf(db.Dialector.Name())
	if d == nil {
		return nil, persist.Errorf(persist.ErrInvalid, "sqlstore: New: unsupported gorm dialect %q (want sqlite, postgres or mysql)", db.Dialector.Name())
	}
	opt, t, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	s := &Store{
		kit:    storekit.New("sqlstore("+d.name()+")", limits, classify),
		gdb:    db,
		db:     sqlDB,
		d:      d,
		t:      t,
		opt:    opt,
		sqlBy:  map[string]string{},
		subByN: map[int]string{},
	}
	s.q = buildQueries(d, t)
	s.q.passList, s.q.settle, s.q.keep, s.q.staleAcks = passListSQL(s), settleSQL(s), keepSQL(s), staleAcksSQL(s)
	if d.listens() {
		s.note = newNotifier()
	}
	return s, nil
}

// Dialect returns "sqlite", "postgres" or "mysql".
func (s *Store) Dialect() string { return s.d.name() }

// DB returns the gorm database the store uses.
func (s *Store) DB() *gorm.DB { return s.gdb }

// Limits returns what the store keeps: MaxTopicLen, MaxClientIDLen,
// MaxStringLen and MaxIDLen bytes, payloads of any size.
func (s *Store) Limits() persist.Limits { return s.kit.Limits() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.kit.Ping(ctx); err != nil {
		return err
	}
	return s.kit.Fail(ctx, "Ping", s.db.PingContext(ctx))
}

// Close makes every later call fail with persist.ErrClosed, ends the
// store's watches and closes the connection if Open made it; closing
// again returns nil.
func (s *Store) Close() error {
	if !s.kit.Close() {
		return nil
	}
	s.watches.CloseAll()
	if s.own {
		if err := s.db.Close(); err != nil {
			return persist.Wrap(s.kit.Name(), "Close", nil, err, false)
		}
	}
	return nil
}

// lockWrites serializes writes on SQLite (the dialect's oneWriter) and
// returns the unlock function.
func (s *Store) lockWrites() func() {
	if !s.d.oneWriter() {
		return func() {}
	}
	s.wmu.Lock()
	return s.wmu.Unlock
}

// enter, fail and invalid are the kit's Enter, Fail and Error for
// actions.go, which does not call the kit itself yet.
func (s *Store) enter(ctx context.Context, op string) error { return s.kit.Enter(ctx, op) }

func (s *Store) fail(ctx context.Context, op string, err error) error {
	return s.kit.Fail(ctx, op, err)
}

func (s *Store) invalid(op, format string, args ...any) error {
	return s.kit.Error(op, persist.ErrInvalid, "", fmt.Errorf(format, args...))
}
