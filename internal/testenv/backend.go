package testenv

import (
	"path/filepath"
	"testing"
)

// Backend is one place a test runs on — an in-process database, a server of
// `make services`, a Redis topology — and how to get what the test works on
// there. The tests of a store package list the backends they run on and
// hand them to EachBackend, which runs the test once per backend.
type Backend[T any] struct {
	// Name names the backend's subtest.
	Name string
	// Open returns what the test works on (a fresh database's URL, a store,
	// a client), cleaned up through t. It runs in the backend's subtest and
	// ends it through Unavailable when the server is missing, as
	// PostgresURL, MySQLURL, RedisURL and the other helpers here do: the
	// subtest fails when servers are Required and is skipped with
	// SetupHint otherwise.
	Open func(t testing.TB) T
}

// EachBackend runs fn in a subtest per backend, in the order given, named by
// the backend's Name, with what the backend's Open returned in that
// subtest. A backend whose server is missing ends only its own subtest
// (see Backend.Open); the others still run.
func EachBackend[T any](t *testing.T, backends []Backend[T], fn func(t *testing.T, v T)) {
	t.Helper()
	each(t, backends, false, fn)
}

// EachBackendParallel is EachBackend with parallel subtests: each calls
// t.Parallel before its backend's Open, so the subtests run together once
// the calling test's function has returned.
func EachBackendParallel[T any](t *testing.T, backends []Backend[T], fn func(t *testing.T, v T)) {
	t.Helper()
	each(t, backends, true, fn)
}

func each[T any](t *testing.T, backends []Backend[T], parallel bool, fn func(t *testing.T, v T)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			fn(t, b.Open(t))
		})
	}
}

// Map returns backends with the names and order of base whose Open turns
// what base's Open returns into what a package's tests work on: open gets
// the backend's name and base's value, in the backend's subtest.
func Map[T, U any](base []Backend[T], open func(t testing.TB, name string, v T) U) []Backend[U] {
	out := make([]Backend[U], len(base))
	for i, b := range base {
		out[i] = Backend[U]{Name: b.Name, Open: func(t testing.TB) U {
			t.Helper()
			return open(t, b.Name, b.Open(t))
		}}
	}
	return out
}

// SQLiteURL returns a sqlite:// URL of a new database file, mqtt.db in the
// test's temporary directory.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "mqtt.db")
}

// SQLBackends returns the SQL databases tests run on, each Open giving the
// URL of a fresh, empty database: "sqlite" (SQLiteURL, always there),
// "postgres" (PostgresURL) and "mysql" (MySQLURL).
func SQLBackends() []Backend[string] {
	return []Backend[string]{
		{Name: "sqlite", Open: SQLiteURL},
		{Name: "postgres", Open: PostgresURL},
		{Name: "mysql", Open: MySQLURL},
	}
}
