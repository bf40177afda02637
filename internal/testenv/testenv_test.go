package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// roundTrip creates a table in db, inserts a row and reads it back.
func roundTrip(t *testing.T, db *sql.DB, placeholder string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kv (k VARCHAR(64) PRIMARY KEY, v VARCHAR(64))"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO kv (k, v) VALUES ("+placeholder+")", "a'; DROP TABLE kv; --", "ü\r\n"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM kv").Scan(&v); err != nil {
		t.Fatalf("select: %v", err)
	}
	if v != "ü\r\n" {
		t.Errorf("read back %q, want %q", v, "ü\r\n")
	}
}

// dbExists reports whether the server behind the admin pool has database name.
func dbExists(t *testing.T, admin *sql.DB, query, name string) bool {
	t.Helper()
	var n int
	if err := admin.QueryRow(query, name).Scan(&n); err != nil {
		t.Fatalf("looking for database %s: %v", name, err)
	}
	return n > 0
}

func dbName(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("fresh URL %q: %v", rawURL, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestPostgresURL(t *testing.T) {
	var name string
	t.Run("fresh", func(t *testing.T) {
		u := PostgresURL(t)
		name = dbName(t, u)
		if !strings.HasPrefix(name, "t_") {
			t.Errorf("database %q does not start with t_", name)
		}
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var cur string
		if err := db.QueryRow("SELECT current_database()").Scan(&cur); err != nil {
			t.Fatal(err)
		}
		if cur != name {
			t.Errorf("connected to %q, want %q", cur, name)
		}
		var tables int
		if err := db.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("fresh database has %d tables", tables)
		}
		roundTrip(t, db, "$1, $2")
		if other := dbName(t, PostgresURL(t)); other == name {
			t.Errorf("two calls returned the same database %q", name)
		}
	})
	if name == "" {
		return // skipped
	}
	admin := adminDB(t, PostgresEnv, "pgx", os.Getenv(PostgresEnv))
	if dbExists(t, admin, "SELECT count(*) FROM pg_database WHERE datname = $1", name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// A connection left open (even inside a transaction) must not keep the
// database alive.
func TestPostgresURLDropsWithOpenConnections(t *testing.T) {
	var name string
	var leaked *sql.DB
	t.Run("leak", func(t *testing.T) {
		u := PostgresURL(t)
		name = dbName(t, u)
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		leaked = db
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("CREATE TABLE held (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	if leaked != nil {
		defer leaked.Close()
	}
	if name == "" {
		return
	}
	admin := adminDB(t, PostgresEnv, "pgx", os.Getenv(PostgresEnv))
	if dbExists(t, admin, "SELECT count(*) FROM pg_database WHERE datname = $1", name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func mysqlAdmin(t *testing.T) *sql.DB {
	t.Helper()
	d, err := MySQLDSN(os.Getenv(MySQLEnv))
	if err != nil {
		t.Fatal(err)
	}
	return adminDB(t, MySQLEnv, "mysql", d)
}

func TestMySQLURL(t *testing.T) {
	var name string
	t.Run("fresh", func(t *testing.T) {
		u := MySQLURL(t)
		name = dbName(t, u)
		if !strings.HasPrefix(name, "t_") {
			t.Errorf("database %q does not start with t_", name)
		}
		d, err := MySQLDSN(u)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("mysql", d)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var cur string
		if err := db.QueryRow("SELECT DATABASE()").Scan(&cur); err != nil {
			t.Fatal(err)
		}
		if cur != name {
			t.Errorf("connected to %q, want %q", cur, name)
		}
		var tables int
		if err := db.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("fresh database has %d tables", tables)
		}
		roundTrip(t, db, "?, ?")
		// parseTime=true: DATETIME scans into time.Time.
		var now time.Time
		if err := db.QueryRow("SELECT NOW()").Scan(&now); err != nil {
			t.Errorf("scan DATETIME into time.Time: %v", err)
		}
	})
	if name == "" {
		return
	}
	if dbExists(t, mysqlAdmin(t), "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestMySQLURLDropsWithOpenConnections(t *testing.T) {
	var name string
	var leaked *sql.DB
	t.Run("leak", func(t *testing.T) {
		u := MySQLURL(t)
		name = dbName(t, u)
		d, err := MySQLDSN(u)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("mysql", d)
		if err != nil {
			t.Fatal(err)
		}
		leaked = db
		if _, err := db.Exec("CREATE TABLE held (x int) ENGINE=InnoDB"); err != nil {
			t.Fatal(err)
		}
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		// An open transaction that read the table holds a metadata lock
		// that DROP DATABASE would wait for.
		if _, err := tx.Exec("SELECT * FROM held FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
	})
	if leaked != nil {
		defer leaked.Close()
	}
	if name == "" {
		return
	}
	if dbExists(t, mysqlAdmin(t), "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestMySQLDSN(t *testing.T) {
	// The converter itself is tested in internal/dsn; this checks the wrapper
	// and the form the services script writes.
	got, err := MySQLDSN("mysql://mqtt:p%40ss@127.0.0.1:53306/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if want := "mqtt:p@ss@tcp(127.0.0.1:53306)/mqtt?parseTime=true"; got != want {
		t.Errorf("MySQLDSN = %q, want %q", got, want)
	}
	if _, err := MySQLDSN("postgres://u:p@h/db"); err == nil {
		t.Error("MySQLDSN accepted a postgres URL")
	}
}

// fakeTB records how a test would have ended. Skipf and Fatalf end the
// goroutine, as the real ones do.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Cleanup(func()) {}

func run(t *testing.T, fn func(testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestMissingServer(t *testing.T) {
	urls := map[string]func(testing.TB) string{
		PostgresEnv: PostgresURL,
		MySQLEnv:    MySQLURL,
	}
	unreachable := map[string]string{
		PostgresEnv: "postgres://u:p@127.0.0.1:1/db?sslmode=disable&connect_timeout=5",
		MySQLEnv:    "mysql://u:p@127.0.0.1:1/db?timeout=5s",
	}
	for env, get := range urls {
		for _, tc := range []struct {
			name, ci, require, value string
			wantFail                 bool
		}{
			{"unset", "", "", "", false},
			{"unset in CI", "true", "", "", true},
			{"unset required", "", "1", "", true},
			{"unreachable", "", "", unreachable[env], false},
			{"unreachable in CI", "1", "", unreachable[env], true},
			{"unreachable required", "", "1", unreachable[env], true},
			{"CI=false", "false", "", "", false},
		} {
			t.Run(env+"/"+tc.name, func(t *testing.T) {
				t.Setenv("CI", tc.ci)
				t.Setenv(RequireEnv, tc.require)
				t.Setenv(env, tc.value)
				f := run(t, func(tb testing.TB) {
					get(tb)
					t.Errorf("returned a URL for a missing server")
				})
				wantMissing(t, f, env, tc.wantFail)
			})
		}
	}
}

// wantMissing checks how a helper that found no server ended: failed (in CI
// or when servers are required) or skipped, with a message naming the
// variable and the setup command.
func wantMissing(t *testing.T, f *fakeTB, env string, wantFail bool) {
	t.Helper()
	if f.failed != wantFail || f.skipped == wantFail {
		t.Errorf("failed=%v skipped=%v, want failed=%v (message %q)", f.failed, f.skipped, wantFail, f.msg)
	}
	for _, want := range []string{env, "make services"} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("message %q does not name %q", f.msg, want)
		}
	}
}
