package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// sqliteHarness makes each store on a SQLite file of its own.
func sqliteHarness() persisttest.Harness {
	return persisttest.Harness{New: func(t testing.TB) persist.Store {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "mqtt.db"), nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return st
	}}
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
	return persisttest.Harness{New: func(t testing.TB) persist.Store {
		t.Helper()
		st, err := sqlstore.New(shared.DB(), &sqlstore.Options{TablePrefix: fmt.Sprintf("t%d_", prefixes.Add(1))})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
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
