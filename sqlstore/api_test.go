package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOpenErrors(t *testing.T) {
	const secret = "s3cr3t-pw"
	addr := closedPort(t)
	for _, c := range []struct {
		name, url string
		kind      error
		mention   string // the message names this
		retryable bool
	}{
		{"postgres unreachable", "postgres://u:" + secret + "@" + addr + "/db?sslmode=disable&connect_timeout=5", persist.ErrUnavailable, addr, true},
		{"mysql unreachable", "mysql://u:" + secret + "@" + addr + "/db?timeout=5s", persist.ErrUnavailable, addr, true},
		{"postgres malformed", "postgres://u:" + secret + "@[::1/db", persist.ErrInvalid, "postgres://", false},
		{"postgres bad parameter", "postgres://u:" + secret + "@" + addr + "/db?sslmode=nonsense", persist.ErrInvalid, addr, false},
		{"mysql no host", "mysql://u:" + secret + "@/db", persist.ErrInvalid, "mysql://", false},
		{"mysql bad parameter", "mysql://u:" + secret + "@" + addr + "/db?parseTime=maybe", persist.ErrInvalid, addr, false},
		{"unknown scheme", "oracle://u:" + secret + "@" + addr + "/db", persist.ErrInvalid, addr, false},
		{"sqlite no path", "sqlite://", persist.ErrInvalid, "sqlite://", false},
		{"sqlite unwritable", "sqlite:///proc/no/such/dir/x.db", nil, "/proc/no/such/dir/x.db", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			st, err := sqlstore.Open(ctx, c.url, nil)
			if err == nil {
				st.Close()
				t.Fatalf("Open(%q) succeeded", c.url)
			}
			msg := err.Error()
			if c.kind != nil && !errors.Is(err, c.kind) {
				t.Errorf("Open: %v; want an error matching %v", err, c.kind)
			}
			if !strings.Contains(msg, c.mention) {
				t.Errorf("Open: %q does not name %q", msg, c.mention)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("Open: %q shows the password", msg)
			}
			if got := persist.IsRetryable(err); got != c.retryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, c.retryable)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := sqlstore.Open(ctx, "postgres://u:p@"+addr+"/db", nil)
		if err != context.Canceled {
			t.Errorf("Open with a cancelled context: %v, want context.Canceled as is", err)
		}
	})
}

func TestOpenSQLiteForms(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{
		"sqlite::memory:",
		"sqlite://:memory:",
		"sqlite://" + filepath.Join(dir, "new/sub/dir/a.db"), // the directory is made
		"sqlite://" + filepath.Join(dir, "b.db") + "?_pragma=synchronous(NORMAL)",
	} {
		t.Run(u, func(t *testing.T) {
			ctx := withTimeout(t)
			st, err := sqlstore.Open(ctx, u, nil)
			if err != nil {
				t.Fatalf("Open(%q): %v", u, err)
			}
			defer st.Close()
			if err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			m := &persist.Message{ID: persist.NewID(), Topic: "a/b", Payload: []byte("x"), Time: time.Now()}
			if err := st.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			got, err := st.FetchOffline(ctx, "c", "a/#", persist.Fetch{})
			if err != nil || len(got) != 1 {
				t.Errorf("FetchOffline: %v, %v", got, err)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []*sqlstore.Options{
		{TablePrefix: "bad-prefix_"},
		{MessageTable: "x; DROP TABLE y"},
		{ClientTable: "1abc"},
		{TablePrefix: strings.Repeat("p", 40)},
		{ClientTable: "same", AckTable: "same"},
		{BatchRows: -1},
		{BatchRows: 100000},
		{BatchBytes: -5},
	} {
		_, err := sqlstore.Open(t.Context(), "sqlite::memory:", o)
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("Open with %+v: %v; want ErrInvalid", o, err)
		}
	}
}

// TestDriverErrors checks that database errors unwrap to the driver's
// error and say whether they are retryable, and that bad input names what
// was wrong.
func TestDriverErrors(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		st := db.open(t, nil)
		ctx := withTimeout(t)
		db.exec(t, "DROP TABLE mqtt_msg")
		err := st.Publish(ctx, &persist.Message{ID: persist.NewID(), Topic: "t", Payload: []byte("x"), Time: time.Now()})
		if err == nil {
			t.Fatal("Publish into a dropped table succeeded")
		}
		var pe *persist.Error
		if !errors.As(err, &pe) || pe.Op != "Publish" || !strings.HasPrefix(pe.Store, "sqlstore(") {
			t.Errorf("error %v is not a *persist.Error of Publish", err)
		}
		if persist.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = true for a missing table", err)
		}
		switch db.dialect {
		case "postgres":
			var pg *pgconn.PgError
			if !errors.As(err, &pg) || pg.Code != "42P01" {
				t.Errorf("error %v does not unwrap to a *pgconn.PgError 42P01", err)
			}
		case "mysql":
			var my *mysql.MySQLError
			if !errors.As(err, &my) || my.Number != 1146 {
				t.Errorf("error %v does not unwrap to a *mysql.MySQLError 1146", err)
			}
		case "sqlite":
			var se interface{ Code() int }
			if !errors.As(err, &se) {
				t.Errorf("error %v does not unwrap to the SQLite driver's error", err)
			}
		}

		// Invalid input: the whole batch is rejected, naming index and topic.
		ok := &persist.Message{ID: persist.NewID(), Topic: "ok", Payload: []byte("x")}
		bad := &persist.Message{ID: persist.NewID(), Topic: "bad/+", Payload: []byte("x")}
		err = st.Publish(ctx, ok, bad)
		if !errors.Is(err, persist.ErrInvalid) || !strings.Contains(err.Error(), `message 1 (topic "bad/+")`) {
			t.Errorf("Publish of an invalid batch: %v; want ErrInvalid naming message 1 and its topic", err)
		}
		long := strings.Repeat("x", sqlstore.MaxTopicLen+1)
		err = st.Retain(ctx, &persist.Message{ID: persist.NewID(), Topic: long, Payload: []byte("x")})
		if !errors.Is(err, persist.ErrInvalid) || !strings.Contains(err.Error(), "1025 bytes") {
			t.Errorf("Retain to a topic past the limit: %v; want ErrInvalid naming its length", err)
		}
		_, err = st.FetchOffline(ctx, strings.Repeat("c", sqlstore.MaxClientIDLen+1), "a", persist.Fetch{})
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("FetchOffline with a too long client ID: %v; want ErrInvalid", err)
		}
		err = st.Connected(ctx, &persist.Client{ID: "bad\x00id", Online: true})
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("Connected with a NUL in the client ID: %v; want ErrInvalid", err)
		}
	})
}

// TestBatches publishes batches that are split by rows and bytes.
func TestBatches(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		st := db.open(t, &sqlstore.Options{BatchRows: 7, BatchBytes: 3 << 20})
		ctx := withTimeout(t)
		var all []*persist.Message
		for i := range 40 {
			p := []byte(fmt.Sprintf("m%d", i))
			if i%10 == 3 {
				p = bytes.Repeat([]byte{byte(i)}, 1<<20)
			}
			all = append(all, &persist.Message{ID: persist.NewID(), Topic: fmt.Sprintf("b/%d", i%3), Payload: p, QoS: 1, Time: time.Now()})
		}
		if err := st.Publish(ctx, all...); err != nil {
			t.Fatal(err)
		}
		if err := st.Publish(ctx, all...); err != nil { // all duplicates
			t.Fatal(err)
		}
		got, err := st.FetchOffline(ctx, "c", "b/+", persist.Fetch{})
		if err != nil || len(got) != len(all) {
			t.Fatalf("FetchOffline: %d messages, %v; want %d", len(got), err, len(all))
		}
		for i := range got {
			if got[i].ID != all[i].ID || !bytes.Equal(got[i].Payload, all[i].Payload) {
				t.Errorf("message %d differs", i)
			}
		}
	})
}

// TestMySQLCollation checks MySQL keeps client IDs, topics and IDs in a
// binary no-pad collation: 'a', 'a ' and 'A' are three keys, also for the
// seeds' own queries.
func TestMySQLCollation(t *testing.T) {
	db := freshDB(t, "mysql")
	st := db.open(t, nil)
	ctx := withTimeout(t)
	for _, tp := range []string{"a", "a ", "A", "a  "} {
		if err := st.Retain(ctx, &persist.Message{ID: persist.NewID(), Topic: tp, Payload: []byte("[" + tp + "]"), Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := st.Connected(ctx, &persist.Client{ID: tp, Node: "[" + tp + "]", Online: true}); err != nil {
			t.Fatal(err)
		}
	}
	_, rows := db.query(t, "select payload from mqtt_retain where topic = 'a'")
	checkRows(t, "seed query for topic 'a'", rows, []row{{"payload": "[a]"}})
	_, rows = db.query(t, "select node from mqtt_client where clientid = 'a '")
	checkRows(t, "seed query for client 'a '", rows, []row{{"node": "[a ]"}})
	_, rows = db.query(t, `select column_name, collation_name from information_schema.columns
		where table_schema = database() and column_name in ('clientid', 'topic', 'msgid') order by table_name, column_name`)
	for _, r := range rows {
		if r["collation_name"] != "utf8mb4_nopad_bin" && r["collation_name"] != "utf8mb4_0900_bin" {
			t.Errorf("column %s has collation %s, want a binary no-pad one", r["column_name"], r["collation_name"])
		}
	}
}
