package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// sqliteHarness makes each store on a SQLite file of its own; Shared
// opens another store on the same file.
func sqliteHarness() persisttest.Harness {
	var files sync.Map // *sqlstore.Store → its URL
	return persisttest.Harness{New: func(t testing.TB) persist.Store {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		url := "sqlite://" + filepath.Join(t.TempDir(), "mqtt.db")
		st, err := sqlstore.Open(ctx, url, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		files.Store(st, url)
		return st
	}, Shared: func(t testing.TB, st persist.Store) persist.Store {
		t.Helper()
		url, ok := files.Load(st)
		if !ok {
			t.Fatal("Shared: not a store of this harness")
		}
		return openShared(t, url.(string), nil)
	}}
}

// openShared opens another store on the database at url, with opts (a
// second broker node on the same tables).
func openShared(t testing.TB, url string, opts *sqlstore.Options) persist.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := sqlstore.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	if sqlDB, err := o.DB().DB(); err == nil {
		sqlDB.SetMaxOpenConns(4)
	}
	return o
}

var prefixes atomic.Int64

// serverHarness opens one fresh database at url (from testenv) for the
// whole run, and gives each store tables of its own (a fresh TablePrefix)
// on the shared connection pool.
func serverHarness(t testing.TB, url string) persisttest.Harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shared, err := sqlstore.Open(ctx, url, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { shared.Close() })
	sqlDB, err := shared.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(24) // a default server takes 100 (PostgreSQL) or 151 (MariaDB)
	sqlDB.SetMaxIdleConns(24)
	var prefixOf sync.Map // *sqlstore.Store → its TablePrefix
	return persisttest.Harness{New: func(t testing.TB) persist.Store {
		t.Helper()
		prefix := fmt.Sprintf("t%d_", prefixes.Add(1))
		st, err := sqlstore.New(shared.DB(), &sqlstore.Options{TablePrefix: prefix})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		prefixOf.Store(st, prefix)
		return st
	}, Shared: func(t testing.TB, st persist.Store) persist.Store {
		t.Helper()
		prefix, ok := prefixOf.Load(st)
		if !ok {
			t.Fatal("Shared: not a store of this harness")
		}
		return openShared(t, url, &sqlstore.Options{TablePrefix: prefix.(string)})
	}}
}

func TestConformanceSQLite(t *testing.T) {
	persisttest.Run(t, sqliteHarness())
}

func TestConformancePostgres(t *testing.T) {
	persisttest.Run(t, serverHarness(t, testenv.PostgresURL(t)))
}

func TestConformanceMySQL(t *testing.T) {
	persisttest.Run(t, serverHarness(t, testenv.MySQLURL(t)))
}

func BenchmarkSQLite(b *testing.B) {
	persisttest.Bench(b, sqliteHarness())
}

func BenchmarkPostgres(b *testing.B) {
	persisttest.Bench(b, serverHarness(b, testenv.PostgresURL(b)))
}

func BenchmarkMySQL(b *testing.B) {
	persisttest.Bench(b, serverHarness(b, testenv.MySQLURL(b)))
}
