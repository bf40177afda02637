package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Store is a persist.Store (with ClientLookup, SubscriptionLookup,
// RetainLookup, Pinger and Closer) on SQL tables shaped like the seeds', safe
// for concurrent use.
type Store struct {
	gdb  *gorm.DB
	db   *sql.DB
	d    dialect
	name string
	t    tables
	opt  Options
	own  bool // Open made db: Close closes it

	closed atomic.Bool
	migMu  sync.Mutex
	// wmu serializes this store's writes on SQLite, which has one writer
	// at a time anyway: waiting here is cheaper than SQLITE_BUSY retries.
	wmu sync.Mutex

	q      queries
	insMu  sync.RWMutex
	insByN map[int]string // Publish INSERT by row count
	subByN map[int]string // Subscribed upsert by row count
	ackByN map[int]string // Acked cursor upsert by row count
}

var (
	_ persist.Store              = (*Store)(nil)
	_ persist.ClientLookup       = (*Store)(nil)
	_ persist.SubscriptionLookup = (*Store)(nil)
	_ persist.RetainLookup       = (*Store)(nil)
	_ persist.Pinger             = (*Store)(nil)
	_ persist.Closer             = (*Store)(nil)
)

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
	var d dialect
	switch n := db.Dialector.Name(); n {
	case "sqlite":
		d = sqliteDialect{}
	case "postgres":
		d = postgresDialect{}
	case "mysql":
		d = &mysqlDialect{}
	default:
		return nil, persist.Errorf(persist.ErrInvalid, "sqlstore: New: unsupported gorm dialect %q (want sqlite, postgres or mysql)", n)
	}
	opt, t, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	s := &Store{
		gdb:    db,
		db:     sqlDB,
		d:      d,
		name:   "sqlstore(" + d.name() + ")",
		t:      t,
		opt:    opt,
		insByN: map[int]string{},
		subByN: map[int]string{},
		ackByN: map[int]string{},
	}
	s.q = buildQueries(d, t)
	return s, nil
}

// Dialect returns "sqlite", "postgres" or "mysql".
func (s *Store) Dialect() string { return s.d.name() }

// DB returns the gorm database the store uses.
func (s *Store) DB() *gorm.DB { return s.gdb }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(ctx, "Ping"); err != nil {
		return err
	}
	return s.fail(ctx, "Ping", s.db.PingContext(ctx))
}

// Close makes every later call fail with persist.ErrClosed and closes the
// connection if Open made it; closing again returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.own {
		if err := s.db.Close(); err != nil {
			return persist.Wrap(s.name, "Close", nil, err, false)
		}
	}
	return nil
}

// enter returns the error that stops op before it starts: a done context
// (as is) or a closed store.
func (s *Store) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return s.closedErr(op)
	}
	return nil
}

func (s *Store) closedErr(op string) error {
	return &persist.Error{Store: s.name, Op: op, Kind: persist.ErrClosed}
}

// invalid returns an error of op matching persist.ErrInvalid.
func (s *Store) invalid(op, format string, args ...any) error {
	e := persist.Errorf(persist.ErrInvalid, format, args...).(*persist.Error)
	e.Store, e.Op = s.name, op
	return e
}

// lockWrites serializes writes on SQLite and returns the unlock function.
func (s *Store) lockWrites() func() {
	if s.d.name() != "sqlite" {
		return func() {}
	}
	s.wmu.Lock()
	return s.wmu.Unlock
}

// fail turns a database error of op into the error the store returns:
// the context's error as is when ctx is done, ErrClosed after Close, else
// a *persist.Error classified by classify.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if s.closed.Load() {
		return &persist.Error{Store: s.name, Op: op, Kind: persist.ErrClosed, Err: err}
	}
	kind, retry := classify(err)
	return persist.Wrap(s.name, op, kind, err, retry)
}
