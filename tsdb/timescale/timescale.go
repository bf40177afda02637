package timescale

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

// Hypertable is a table Migrate makes a TimescaleDB hypertable,
// partitioned by time on TimeColumn, when the timescaledb extension is
// installed.
type Hypertable struct {
	Table, TimeColumn string
}

// Options configure a writer; nil means defaults.
type Options struct {
	// Schema holds statements Migrate runs first, in order, such as
	// "CREATE TABLE IF NOT EXISTS sensor_data (…)": the templates' SQL
	// only inserts, into tables that must exist. They should be
	// idempotent, as Migrate may run again.
	Schema []string
	// Hypertables are made hypertables by Migrate (if_not_exists: again
	// is harmless) when the timescaledb extension is installed; without
	// it they stay plain tables, which the templates' INSERTs fill alike.
	Hypertables []Hypertable
	// Name names the writer in errors; default "timescale".
	Name string
}

// Writer writes messages to PostgreSQL (TimescaleDB) with the statements
// of its templates, one execution per row, every row of a Publish in one
// batch: one round trip and one implicit transaction, so that a Publish
// writes all its rows or none. It is a publish-only persist.Store, safe
// for concurrent use.
type Writer struct {
	persist.Unsupported
	tsdb.Reporter

	kit  *storekit.Kit
	set  *tsdb.Set[tsdb.Timescale]
	opts Options
	pool *pgxpool.Pool
	own  bool // Close closes pool
}

var (
	_ persist.Store          = (*Writer)(nil)
	_ persist.EventSupporter = (*Writer)(nil)
	_ persist.Pinger         = (*Writer)(nil)
	_ persist.Closer         = (*Writer)(nil)
	_ persist.Migrator       = (*Writer)(nil)
)

// New returns a writer to the database of pool, executing the statements
// of set. The caller owns pool: Close does not close it.
func New(pool *pgxpool.Pool, set *tsdb.Set[tsdb.Timescale], opts *Options) (*Writer, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Name == "" {
		o.Name = "timescale"
	}
	bad := func(format string, args ...any) error {
		return &persist.Error{Store: o.Name, Op: "New", Kind: persist.ErrInvalid, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case pool == nil:
		return nil, bad("no pool")
	case set == nil:
		return nil, bad("no templates")
	}
	for _, h := range o.Hypertables {
		if h.Table == "" || h.TimeColumn == "" {
			return nil, bad("hypertable %+v: a table and its time column are needed", h)
		}
	}
	return &Writer{kit: storekit.New(o.Name, persist.Limits{}, classify), set: set, opts: o, pool: pool}, nil
}

// Events returns persist.OnPublish.
func (w *Writer) Events() persist.Event { return persist.OnPublish }

// row is a queued statement: its template and message, for errors.
type row struct {
	t *tsdb.Timescale
	m *persist.Message
	n int // the row's position among the rows of its template and message
}

var batches = sync.Pool{New: func() any { return new(work) }}

// work is a Publish call's rows.
type work struct {
	rows [][]any
	meta []row
}

// Publish executes, for each message, the statement of every template
// matching its topic once per row the template renders, all in one batch.
// A message that does not fit a template is skipped for it (see the tsdb
// package doc). An error of the database fails the whole batch (nothing of
// it is written): data errors, constraint violations and SQL errors match
// persist.ErrInvalid and are not retryable (a Pipeline then writes the
// batch message by message); lost connections, a server shutting down,
// deadlocks and serialization failures are retryable. A batch retried
// after its commit was lost on the way writes its rows again: give the
// table a unique key on $id and the statement ON CONFLICT DO NOTHING to
// keep each message's rows once.
func (w *Writer) Publish(ctx context.Context, msgs ...*persist.Message) error {
	msgs, err := w.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	wk := batches.Get().(*work)
	defer func() {
		clear(wk.rows)
		clear(wk.meta)
		wk.rows, wk.meta = wk.rows[:0], wk.meta[:0]
		batches.Put(wk)
	}()
	tsdb.Render(&w.Reporter, w.set, msgs, func(s *tsdb.Scope, t *tsdb.Timescale) (int, error) {
		before := len(wk.rows)
		var err error
		if wk.rows, err = t.AppendRows(wk.rows, s); err != nil {
			return 0, err
		}
		for i := before; i < len(wk.rows); i++ {
			wk.meta = append(wk.meta, row{t: t, m: s.Message(), n: i - before + 1})
		}
		return len(wk.rows) - before, nil
	})
	if len(wk.rows) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for i, args := range wk.rows {
		b.Queue(wk.meta[i].t.SQL, args...)
	}
	br := w.pool.SendBatch(ctx, b)
	for i := range wk.rows {
		if _, err := br.Exec(); err != nil {
			br.Close()
			r := wk.meta[i]
			return w.kit.Fail(ctx, "Publish", &persist.Error{
				What: fmt.Sprintf("message %s (topic %q) template %q row %d", r.m.ID, r.m.Topic, r.t.Name, r.n),
				Kind: kindOf(err), Err: err, Retryable: retryable(err)})
		}
	}
	return w.kit.Fail(ctx, "Publish", br.Close())
}

// kindOf returns persist.ErrInvalid for errors of the data or the SQL,
// persist.ErrUnavailable for a server that cannot be reached, else nil.
func kindOf(err error) error {
	kind, _ := classify(err)
	return kind
}

func retryable(err error) bool {
	_, r := classify(err)
	return r
}

// classify tells the kind of a database error and whether trying again
// may succeed.
func classify(err error) (kind error, retryable bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "53300",                                         // too_many_connections
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, crash, cannot connect now
			return persist.ErrUnavailable, true
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03", // serialization, deadlock, lock not available
			pe.Code == "53200", pe.Code == "53100": // out of memory, disk full
			return nil, true
		case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"), strings.HasPrefix(pe.Code, "42"):
			return persist.ErrInvalid, false // data, constraint, syntax or access
		}
		return nil, false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) {
		return persist.ErrUnavailable, true
	}
	if errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, net.ErrClosed) {
		return persist.ErrUnavailable, true
	}
	return nil, false
}

// HasTimescale reports whether the timescaledb extension is installed in
// the database.
func (w *Writer) HasTimescale(ctx context.Context) (bool, error) {
	if err := w.kit.Enter(ctx, "HasTimescale"); err != nil {
		return false, err
	}
	var ok bool
	err := w.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')`).Scan(&ok)
	return ok, w.kit.Fail(ctx, "HasTimescale", err)
}

// Migrate runs Options.Schema, then makes each of Options.Hypertables a
// hypertable if the timescaledb extension is installed (see HasTimescale)
// and leaves them plain tables if it is not. Running it again is
// harmless when the Schema statements are idempotent.
func (w *Writer) Migrate(ctx context.Context) error {
	if err := w.kit.Enter(ctx, "Migrate"); err != nil {
		return err
	}
	for _, stmt := range w.opts.Schema {
		if _, err := w.pool.Exec(ctx, stmt); err != nil {
			return w.kit.Fail(ctx, "Migrate", &persist.Error{What: fmt.Sprintf("schema %q", short(stmt)), Kind: kindOf(err), Err: err, Retryable: retryable(err)})
		}
	}
	if len(w.opts.Hypertables) == 0 {
		return nil
	}
	ok, err := w.HasTimescale(ctx)
	if err != nil || !ok {
		return err
	}
	for _, h := range w.opts.Hypertables {
		_, err := w.pool.Exec(ctx, `SELECT create_hypertable($1::regclass, $2::name, if_not_exists => TRUE, migrate_data => TRUE)`, h.Table, h.TimeColumn)
		if err != nil {
			return w.kit.Fail(ctx, "Migrate", &persist.Error{What: fmt.Sprintf("hypertable %q", h.Table), Kind: kindOf(err), Err: err, Retryable: retryable(err)})
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// Ping checks that the database answers.
func (w *Writer) Ping(ctx context.Context) error {
	if err := w.kit.Ping(ctx); err != nil {
		return err
	}
	return w.kit.Fail(ctx, "Ping", w.pool.Ping(ctx))
}

// Close stops the writer: later calls fail with persist.ErrClosed. It
// closes the pool only when Open made it.
func (w *Writer) Close() error {
	if w.kit.Close() && w.own {
		w.pool.Close()
	}
	return nil
}
