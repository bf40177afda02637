package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// randomTopics returns valid topic names and filters made of levels that
// are hard on SQL: LIKE wildcards, the escape character, case, spaces,
// '$', empty levels.
func randomTopics(r *rand.Rand) (names, filters []string) {
	parts := []string{"a", "A", "b", "%", "_", "!", `\`, " ", "$", "é", "a ", "ab", "a_b", "a%b", "!%"}
	level := func(filter bool) string {
		if filter {
			switch r.IntN(6) {
			case 0:
				return "+"
			case 1:
				return "#"
			}
		}
		if r.IntN(8) == 0 {
			return ""
		}
		var b strings.Builder
		for range 1 + r.IntN(2) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		return b.String()
	}
	gen := func(filter bool) string {
		n := 1 + r.IntN(4)
		ls := make([]string, n)
		for i := range ls {
			ls[i] = level(filter)
		}
		return strings.Join(ls, "/")
	}
	seen := map[string]bool{}
	for len(names) < 1500 {
		if n := gen(false); topic.ValidateName(n) == nil && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for len(filters) < 250 {
		if f := gen(true); topic.ValidateFilter(f) == nil {
			filters = append(filters, f)
		}
	}
	return names, append(filters, "#", "+", "a/#", "+/+", "!/#", "%/+", "_", "$/#", "/#", "/+")
}

func TestTopicNarrow(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var d dialect
			var db *sql.DB
			var err error
			switch name {
			case "sqlite":
				d = sqliteDialect{}
				db, err = sql.Open("sqlite", ":memory:")
				if db != nil {
					db.SetMaxOpenConns(1)
				}
			case "postgres":
				d = postgresDialect{}
				db, err = sql.Open("pgx", testenv.PostgresURL(t))
			case "mysql":
				d = &mysqlDialect{collation: "utf8mb4_nopad_bin"}
				var dsn string
				if dsn, err = testenv.MySQLDSN(testenv.MySQLURL(t)); err == nil {
					db, err = sql.Open("mysql", dsn)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := t.Context()
			if _, err := db.ExecContext(ctx, "CREATE TABLE nt (topic "+d.colType(kTopic)+")"); err != nil {
				t.Fatal(err)
			}
			names, filters := randomTopics(rand.New(rand.NewPCG(1, 2)))
			for rest := names; len(rest) > 0; {
				n := min(len(rest), 500)
				args := make([]any, n)
				for i, s := range rest[:n] {
					args[i] = s
				}
				if _, err := db.ExecContext(ctx, d.rebind("INSERT INTO nt (topic) VALUES "+rowsOf(n, 1)), args...); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			for _, f := range filters {
				nw := topicNarrow("topic", f)
				rows, err := db.QueryContext(ctx, d.rebind("SELECT topic FROM nt WHERE "+nw.sql), nw.args...)
				if err != nil {
					t.Fatalf("filter %q: %v", f, err)
				}
				var got []string
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						t.Fatal(err)
					}
					got = append(got, s)
				}
				rows.Close()
				for _, n := range names {
					match := topic.Match(f, n)
					in := slices.Contains(got, n)
					if match && !in {
						t.Errorf("filter %q matches %q but %s with %s %q leaves it out", f, n, name, nw.sql, nw.args)
					}
					if nw.exact && !match && in && n[0] != '$' {
						t.Errorf("filter %q: exact narrowing %s %q returns %q, which it does not match", f, nw.sql, nw.args, n)
					}
				}
			}
		})
	}
}

func TestLikePattern(t *testing.T) {
	for f, want := range map[string]string{
		"a/+/c":   "a/%/c",
		"a/+/c/#": "a/%/c%",
		"#":       "%",
		"x%y/+":   "x!%y/%",
		"x_y!/#":  "x!_y!!%",
		`a\b/+`:   `a\b/%`,
	} {
		if got := likePattern(f); got != want {
			t.Errorf("likePattern(%q) = %q, want %q", f, got, want)
		}
	}
}

func TestRebindDollar(t *testing.T) {
	if got := rebindDollar("a = ? AND b IN (?, ?)"); got != "a = $1 AND b IN ($2, $3)" {
		t.Errorf("rebindDollar = %q", got)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err   error
		kind  error
		retry bool
	}{
		{&pgconn.PgError{Code: "40001"}, nil, true},
		{&pgconn.PgError{Code: "40P01"}, nil, true},
		{&pgconn.PgError{Code: "55P03"}, nil, true},
		{&pgconn.PgError{Code: "08006"}, persist.ErrUnavailable, true},
		{&pgconn.PgError{Code: "23505"}, nil, false},
		{&pgconn.PgError{Code: "42601"}, nil, false},
		{&mysql.MySQLError{Number: 1213}, nil, true},
		{&mysql.MySQLError{Number: 1205}, nil, true},
		{&mysql.MySQLError{Number: 1062}, nil, false},
		{&mysql.MySQLError{Number: 1064}, nil, false},
		{mysql.ErrInvalidConn, persist.ErrUnavailable, true},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, persist.ErrUnavailable, true},
		{errors.New("something"), nil, false},
	} {
		kind, retry := classify(c.err)
		if kind != c.kind || retry != c.retry {
			t.Errorf("classify(%v) = %v, %v; want %v, %v", c.err, kind, retry, c.kind, c.retry)
		}
	}
}

func TestTimes(t *testing.T) {
	want := time.Date(2016, 12, 24, 17, 25, 12, 345678000, time.UTC)
	for _, v := range []any{
		want,
		time.Date(2016, 12, 24, 17, 25, 12, 345678000, time.FixedZone("X", 7200)), // a driver's loc on a UTC wall clock
		"2016-12-24 17:25:12.345678",
		[]byte("2016-12-24 17:25:12.345678"),
		"2016-12-24T17:25:12.345678Z",
	} {
		got, err := toTime(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("toTime(%#v) = %v, %v; want %v", v, got, err, want)
		}
	}
	if got, err := toTime(nil); err != nil || !got.IsZero() {
		t.Errorf("toTime(nil) = %v, %v", got, err)
	}
	if s := (sqliteDialect{}).timeArg(want.In(time.FixedZone("Y", -3600))); s != "2016-12-24 17:25:12.345678" {
		t.Errorf("sqlite timeArg = %v", s)
	}
}

func TestSQLiteDSN(t *testing.T) {
	for u, want := range map[string]string{
		"sqlite::memory:":         ":memory:",
		"sqlite://:memory:":       ":memory:",
		"sqlite://./data/mqtt.db": "./data/mqtt.db?_pragma=busy_timeout%2810000%29&_pragma=journal_mode%28WAL%29&_txlock=immediate",
		"sqlite:///abs/x.db?_txlock=deferred&_pragma=journal_mode(DELETE)": "/abs/x.db?_pragma=journal_mode%28DELETE%29&_pragma=busy_timeout%2810000%29&_txlock=deferred",
	} {
		got, _, err := sqliteDSN(u)
		if err != nil || got != want {
			t.Errorf("sqliteDSN(%q) = %q, %v; want %q", u, got, err, want)
		}
	}
}

func TestKeyHashMatchesMySQL(t *testing.T) {
	dsn, err := testenv.MySQLDSN(testenv.MySQLURL(t))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, k := range [][]string{{"test"}, {"a ", "x/é/😀"}, {"c", ""}} {
		var got []byte
		if err := db.QueryRowContext(ctx, "SELECT "+hashExpr([]string{"?", "?"}[:len(k)]), anys(k)...).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := keyHash(k...); string(got) != string(want) {
			t.Errorf("key %q: MySQL hash %x, Go %x", k, got, want)
		}
	}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
