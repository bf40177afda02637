package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/sqlite"     // driver "sqlite"
	_ "github.com/go-sql-driver/mysql" // driver "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// testDB is one fresh database: its URL for sqlstore.Open and the same
// database through the plain driver, to run the seeds' own SQL.
type testDB struct {
	dialect string
	url     string
	raw     *sql.DB
}

// databases are the SQL databases the tests run on, each fresh per test.
var databases = testenv.Map(testenv.SQLBackends(), newTestDB)

// eachDB runs fn as a subtest per dialect, each on a fresh database.
func eachDB(t *testing.T, fn func(t *testing.T, db testDB)) {
	t.Helper()
	testenv.EachBackendParallel(t, databases, fn)
}

// freshDB returns a fresh database of dialect: "sqlite", "postgres" or
// "mysql".
func freshDB(t *testing.T, dialect string) testDB {
	t.Helper()
	for _, b := range databases {
		if b.Name == dialect {
			return b.Open(t)
		}
	}
	t.Fatalf("freshDB: no dialect %q", dialect)
	return testDB{}
}

// newTestDB is the database of dialect at url, with its plain driver
// connection.
func newTestDB(t testing.TB, dialect, url string) testDB {
	t.Helper()
	var driver, dataSource string
	switch dialect {
	case "sqlite":
		driver, dataSource = "sqlite", strings.TrimPrefix(url, "sqlite://")+"?_pragma=busy_timeout(10000)"
	case "postgres":
		driver, dataSource = "pgx", url
	case "mysql":
		dsn, err := testenv.MySQLDSN(url)
		if err != nil {
			t.Fatal(err)
		}
		driver, dataSource = "mysql", dsn
	}
	raw, err := sql.Open(driver, dataSource)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return testDB{dialect: dialect, url: url, raw: raw}
}

// open opens a store on db, migrated, closed at cleanup.
func (db testDB) open(t *testing.T, opts *sqlstore.Options) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), db.url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return st
}

// exec runs SQL statements through the plain driver.
func (db testDB) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.raw.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// row is one result row, column name → value as text ("NULL" for NULL).
type row map[string]string

// query runs a query through the plain driver and returns its column
// names and rows as text.
func (db testDB) query(t *testing.T, q string, args ...any) ([]string, []row) {
	t.Helper()
	rows, err := db.raw.QueryContext(t.Context(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := row{}
		for i, c := range cols {
			r[strings.ToLower(c)] = text(vals[i])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range cols {
		cols[i] = strings.ToLower(cols[i])
	}
	return cols, out
}

// text renders a scanned value the way a SQL shell shows it.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(v)
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case time.Time:
		return v.Format("2006-01-02 15:04:05")
	}
	return fmt.Sprint(v)
}

// shellTime renders t as a stored time shows (UTC, whole seconds).
func shellTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// sameTime reports whether a stored time (as text, maybe with fractions)
// shows the instant t.
func sameTime(stored string, t time.Time) bool {
	return strings.HasPrefix(strings.Replace(stored, "T", " ", 1), shellTime(t))
}

func withTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
