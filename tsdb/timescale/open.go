package timescale

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

func init() {
	persist.Register("timescale", Open)
}

// Open returns the writer a URL names (persist.Open calls it for the
// scheme timescale, which this package registers), with a pool of its own
// that Close closes:
//
//	timescale://user:password@host:5432/database?templates=FILE[&hypertable=TABLE:TIMECOLUMN…&sslmode=…]
//
// templates (required) is the file of Timescale templates (see
// tsdb.LoadTimescale); each hypertable (the parameter may repeat) is a
// table Migrate makes a hypertable when the timescaledb extension is
// installed; name names the writer in errors. Every other parameter is
// pgx's, as in a postgres:// URL (sslmode, pool_max_conns, …). Open
// connects only when the pool first needs to: Ping checks the database.
func Open(ctx context.Context, rawURL string) (persist.Store, error) {
	pu, err := tsdb.ParseURL("timescale", rawURL, false)
	if err != nil {
		return nil, err
	}
	u, q, file := pu.URL, pu.Query, pu.Templates
	bad := pu.Bad
	var o Options
	for _, h := range q["hypertable"] {
		table, col, ok := strings.Cut(h, ":")
		if !ok || table == "" || col == "" {
			return nil, bad("hypertable=%q: want TABLE:TIMECOLUMN", h)
		}
		o.Hypertables = append(o.Hypertables, Hypertable{Table: table, TimeColumn: col})
	}
	o.Name = q.Get("name")
	for _, k := range []string{"templates", "hypertable", "name"} {
		q.Del(k)
	}
	u.Scheme = "postgres"
	u.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, bad("%v", err)
	}
	set, err := tsdb.LoadTimescale(file)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &persist.Error{Store: "timescale", Op: "Open", Kind: persist.ErrUnavailable, Err: err, Retryable: true}
	}
	w, err := New(pool, set, &o)
	if err != nil {
		pool.Close()
		return nil, err
	}
	w.own = true
	return w, nil
}
