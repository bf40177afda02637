package persist_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://u:s3cret@db:5432/mqtt?sslmode=disable", "postgres://u:xxxxx@db:5432/mqtt?sslmode=disable"},
		{"mysql://mqtt:mqtt@127.0.0.1:13306/mqtt", "mysql://mqtt:xxxxx@127.0.0.1:13306/mqtt"},
		{"redis://:s3cret@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"rediss://default:s3cret@h:6380/1?dial_timeout=3s", "rediss://default:xxxxx@h:6380/1?dial_timeout=3s"},
		// Nothing to hide: kept byte for byte, also when it does not parse.
		{"sqlite://./data/mqtt.db", "sqlite://./data/mqtt.db"},
		{"sqlite::memory:", "sqlite::memory:"},
		{"sqlite:///tmp/a b/x.db?_pragma=busy_timeout(100)", "sqlite:///tmp/a b/x.db?_pragma=busy_timeout(100)"},
		{"redis://u@h:6379/0", "redis://u@h:6379/0"},
		{"redis://u:@h:6379/0", "redis://u:@h:6379/0"},
		{"postgres://h/db?x=a@b&y=c:d", "postgres://h/db?x=a@b&y=c:d"},
		{"localhost", "localhost"},
		{"", ""},
		// A password with what a URL cannot hold unescaped.
		{"postgres://u:p@ss@h/db", "postgres://u:xxxxx@h/db"},
		{"mysql://u:sec#ret@h:1/db", "mysql://u:xxxxx@h:1/db"},
		{"mysql://u:sec/ret@h:1/db", "mysql://u:xxxxx@h:1/db"},
		{"mysql://u:sec?ret@h:1/db", "mysql://u:xxxxx@h:1/db"},
		{"mysql://u:sec%zzret@h:1/db", "mysql://u:xxxxx@h:1/db"},
		{"postgres://u:s3cret@[::1/db", "postgres://u:xxxxx@[::1/db"},
		{"mysql://u:p%40ss@h/db", "mysql://u:xxxxx@h/db"},
		// Several hosts, which url.Parse refuses with IPv6 literals.
		{"redis+sentinel://u:s3cret@[::1]:26379,[::1]:26380/mymaster/0", "redis+sentinel://u:xxxxx@[::1]:26379,[::1]:26380/mymaster/0"},
		{"redis+cluster://:s3cret@h1:7001,h2:7002", "redis+cluster://:xxxxx@h1:7001,h2:7002"},
		// A driver's DSN, no scheme.
		{"u:s3cret@tcp(h:3306)/db", "u:xxxxx@tcp(h:3306)/db"},
		// Secret query parameters; others, and the fragment, stay.
		{"postgres://h/db?sslmode=require&sslpassword=k3y&application_name=x", "postgres://h/db?sslmode=require&sslpassword=xxxxx&application_name=x"},
		{"mongodb://h/?authSource=admin&password=p1&token=t1", "mongodb://h/?authSource=admin&password=xxxxx&token=xxxxx"},
		{"https://h/p?X-Amz-Signature=abc&X-Amz-Security-Token=def&X-Amz-Date=1", "https://h/p?X-Amz-Signature=xxxxx&X-Amz-Security-Token=xxxxx&X-Amz-Date=1"},
		{"influx://h:8086/db?api_key=k&Client_Secret=c&access-token=a#frag", "influx://h:8086/db?api_key=xxxxx&Client_Secret=xxxxx&access-token=xxxxx#frag"},
		{"x://h/?key=1&auth=2&sig=3&pass=4&keyspace=mqtt&passfile=/p&sslkey=/k", "x://h/?key=xxxxx&auth=xxxxx&sig=xxxxx&pass=xxxxx&keyspace=mqtt&passfile=/p&sslkey=/k"},
		{"x://h/?%70assword=s", "x://h/?%70assword=xxxxx"},
		{"x://h/?password=&token", "x://h/?password=&token"},
		{"postgres://u:s3cret@h/db?password=again", "postgres://u:xxxxx@h/db?password=xxxxx"},
		{"sqlite::memory:?token=t", "sqlite::memory:?token=xxxxx"},
	} {
		if got := persist.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	const raw = "mysql://mqtt:s3c#ret@db:3306/mqtt"
	driver := &driverErr{code: "dial db:3306 as mqtt:s3c#ret, also s3c%23ret, then invalid port \":s3c\""}
	err := persist.Wrap("sqlstore(mysql)", "Open "+persist.Redact(raw), persist.ErrUnavailable, driver, true)
	got := persist.RedactError(err, raw)
	msg := got.Error()
	for _, leak := range []string{"s3c#ret", "s3c%23ret", `":s3c"`} {
		if strings.Contains(msg, leak) {
			t.Errorf("RedactError text shows %q: %s", leak, msg)
		}
	}
	// The redacted URL keeps its user name and database, which hold no
	// part of the password.
	if !strings.Contains(msg, "Open mysql://mqtt:xxxxx@db:3306/mqtt:") {
		t.Errorf("RedactError text lost the redacted URL: %s", msg)
	}
	var d *driverErr
	var pe *persist.Error
	if !errors.Is(got, persist.ErrUnavailable) || !errors.As(got, &d) || !errors.As(got, &pe) || !persist.IsRetryable(got) {
		t.Errorf("RedactError(%v) = %v: lost its kind, driver error or retryable", err, got)
	}
	if pe.Store != "sqlstore(mysql)" || pe.Kind != persist.ErrUnavailable || !pe.Retryable {
		t.Errorf("RedactError: *Error %+v, want the same store, kind and retryable", pe)
	}
	// Nothing to hide: the same error.
	if clean := errors.New("refused"); persist.RedactError(clean, raw) != clean {
		t.Errorf("RedactError of an error without credentials is not that error")
	}
	if persist.RedactError(nil, raw) != nil {
		t.Errorf("RedactError(nil) is not nil")
	}
	// A plain error too, such as url.Parse's, which quotes the URL.
	_, perr := url.Parse("postgres://u:s3cret@[::1/db")
	if got := persist.RedactError(perr, "postgres://u:s3cret@[::1/db"); strings.Contains(got.Error(), "s3cret") || !errors.Is(got, perr) {
		t.Errorf("RedactError(url.Parse error) = %v", got)
	}
}

func TestRegisterPanics(t *testing.T) {
	noop := func(context.Context, string) (persist.Store, error) { return nil, errors.New("unused") }
	persist.Register("opentest+dup", noop)
	for _, c := range []struct {
		scheme string
		open   persist.Opener
		says   string
	}{
		{"", noop, "invalid scheme"},
		{"Upper", noop, "invalid scheme"},
		{"1abc", noop, "invalid scheme"},
		{"a b", noop, "invalid scheme"},
		{"sqlite://", noop, "invalid scheme"},
		{"opentest+nil", nil, "nil Opener"},
		{"opentest+dup", noop, "twice"},
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), c.says) {
					t.Errorf("Register(%q): panic %v, want one that says %q", c.scheme, r, c.says)
				}
			}()
			persist.Register(c.scheme, c.open)
		}()
	}
	if s := persist.Schemes(); slices.Contains(s, "opentest+nil") || !slices.Contains(s, "opentest+dup") {
		t.Errorf("Schemes() = %v after the refused registrations", s)
	}
}

func TestOpenSchemes(t *testing.T) {
	s := persist.Schemes()
	if !slices.IsSorted(s) {
		t.Errorf("Schemes() = %v, not sorted", s)
	}
	for _, want := range []string{"sqlite", "postgres", "postgresql", "mysql"} {
		if !slices.Contains(s, want) {
			t.Errorf("Schemes() = %v: importing sqlstore did not register %q", s, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	// An Opener that fails as a driver would, quoting the URL it was given.
	persist.Register("opentest+quote", func(_ context.Context, raw string) (persist.Store, error) {
		return nil, fmt.Errorf("driver: cannot reach %s", raw)
	})
	persist.Register("opentest+none", func(context.Context, string) (persist.Store, error) { return nil, nil })
	for _, c := range []struct {
		url  string
		kind error
		says []string
	}{
		{"oracle://scott:t1ger@db/orcl", persist.ErrInvalid, []string{`unknown scheme "oracle"`, "registered: ", "sqlite", "oracle://scott:xxxxx@db/orcl"}},
		{"localhost", persist.ErrInvalid, []string{`"localhost" is not a store URL`, "registered: "}},
		{"127.0.0.1:6379", persist.ErrInvalid, []string{"is not a store URL"}},
		{"u:t1ger@tcp(h:1)/db", persist.ErrInvalid, []string{`unknown scheme "u"`, "u:xxxxx@"}},
		{"", persist.ErrInvalid, []string{`"" is not a store URL`}},
		{"opentest+quote://u:t1ger@h/db", nil, []string{"driver: cannot reach opentest+quote://u:xxxxx@h/db"}},
		{"opentest+none://h", nil, []string{"returned no store and no error"}},
		// The store's own errors, through the registry.
		{"postgres://u:t1ger@[::1/db", persist.ErrInvalid, []string{"postgres://u:xxxxx@"}},
		{"sqlite://", persist.ErrInvalid, []string{"sqlite://"}},
	} {
		st, err := persist.Open(ctx, c.url)
		if err == nil {
			t.Errorf("Open(%q) = %v, want an error", c.url, st)
			continue
		}
		if c.kind != nil && !errors.Is(err, c.kind) {
			t.Errorf("Open(%q): %v, want an error matching %v", c.url, err, c.kind)
		}
		for _, s := range c.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Open(%q): %q does not say %q", c.url, err, s)
			}
		}
		if strings.Contains(err.Error(), "t1ger") {
			t.Errorf("Open(%q): the error shows the password: %v", c.url, err)
		}
		if persist.IsRetryable(err) {
			t.Errorf("Open(%q): %v is retryable", c.url, err)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := persist.Open(done, "sqlite::memory:"); err != context.Canceled {
		t.Errorf("Open with a cancelled context: %v, want context.Canceled as is", err)
	}
}

// TestOpenSQLite opens a real store through the registry: the scheme's
// case does not count, and the store is sqlstore's, with its Migrator.
func TestOpenSQLite(t *testing.T) {
	ctx := t.Context()
	for _, u := range []string{"sqlite::memory:", "SQLite://:memory:", "sqlite://" + t.TempDir() + "/a.db"} {
		st, err := persist.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, ok := st.(*sqlstore.Store); !ok {
			t.Errorf("Open(%q) = %T, want *sqlstore.Store", u, st)
		}
		m, ok := st.(persist.Migrator)
		if !ok {
			t.Fatalf("Open(%q) = %T, not a persist.Migrator", u, st)
		}
		if err := m.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := st.Retain(ctx, &persist.Message{ID: persist.NewID(), Topic: "a", Payload: []byte("x"), Time: time.Now()}); err != nil {
			t.Errorf("Retain on %q: %v", u, err)
		}
		if err := st.(persist.Closer).Close(); err != nil {
			t.Error(err)
		}
	}
}
