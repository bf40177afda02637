package sqlstore_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// TestOpenRegistered opens every scheme sqlstore registers through
// persist.Open: the store is a *sqlstore.Store on the database named, and
// a persist.Migrator.
func TestOpenRegistered(t *testing.T) {
	for _, s := range []string{"sqlite", "sqlite3", "postgres", "postgresql", "mysql", "mariadb"} {
		if !slices.Contains(persist.Schemes(), s) {
			t.Errorf("persist.Schemes() = %v: no %q", persist.Schemes(), s)
		}
	}
	urls := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "a.db") },
		"sqlite3":  func(t *testing.T) string { return "sqlite3://" + filepath.Join(t.TempDir(), "a.db") },
		"postgres": func(t *testing.T) string { return testenv.PostgresURL(t) },
		"postgresql": func(t *testing.T) string {
			return "postgresql" + strings.TrimPrefix(testenv.PostgresURL(t), "postgres")
		},
		"mysql":   func(t *testing.T) string { return testenv.MySQLURL(t) },
		"mariadb": func(t *testing.T) string { return "mariadb" + strings.TrimPrefix(testenv.MySQLURL(t), "mysql") },
	}
	for _, name := range []string{"sqlite", "sqlite3", "postgres", "postgresql", "mysql", "mariadb"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := withTimeout(t)
			u := urls[name](t)
			st, err := persist.Open(ctx, u)
			if err != nil {
				t.Fatalf("persist.Open(%s): %v", persist.Redact(u), err)
			}
			s, ok := st.(*sqlstore.Store)
			if !ok {
				t.Fatalf("persist.Open(%s) = %T, want *sqlstore.Store", persist.Redact(u), st)
			}
			defer s.Close()
			if err := st.(persist.Migrator).Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			m := &persist.Message{ID: persist.NewID(), Topic: "open/t", Payload: []byte("x"), QoS: 1, Time: time.Now()}
			if err := st.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			got, err := st.FetchOffline(ctx, "c", "open/+", persist.Fetch{})
			if err != nil || len(got) != 1 || got[0].ID != m.ID {
				t.Errorf("FetchOffline = %v, %v; want the message published", got, err)
			}
		})
	}
}

// TestOpenRegisteredErrors: through persist.Open, sqlstore's errors keep
// their kind and retryability and show no password.
func TestOpenRegisteredErrors(t *testing.T) {
	const secret = "s3cr3t-pw"
	addr := closedPort(t)
	for _, c := range []struct {
		url       string
		kind      error
		retryable bool
	}{
		{"postgres://u:" + secret + "@" + addr + "/db?sslmode=disable&connect_timeout=5", persist.ErrUnavailable, true},
		{"mariadb://u:" + secret + "@" + addr + "/db?timeout=5s", persist.ErrUnavailable, true},
		{"mysql://u:" + secret + "@/db", persist.ErrInvalid, false},
		{"postgresql://u:" + secret + "@[::1/db", persist.ErrInvalid, false},
	} {
		_, err := persist.Open(withTimeout(t), c.url)
		if !errors.Is(err, c.kind) || persist.IsRetryable(err) != c.retryable {
			t.Errorf("persist.Open(%s): %v (retryable %v); want an error matching %v, retryable %v",
				persist.Redact(c.url), err, persist.IsRetryable(err), c.kind, c.retryable)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("persist.Open(%s): the error shows the password: %v", persist.Redact(c.url), err)
		}
	}
}
