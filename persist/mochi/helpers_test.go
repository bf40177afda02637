package mochi_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// db is a database the tests open stores on: each call of open gives a
// new store (a new connection pool), as a restarted broker process would.
type db struct {
	name string
	url  string
}

func sqliteDB(t testing.TB) db {
	return db{name: "sqlite", url: testenv.SQLiteURL(t)}
}

// databases are the databases to run a test on: SQLite always, PostgreSQL
// and MySQL when their servers are there (testenv decides skip or fail).
var databases = testenv.Map(testenv.SQLBackends(), func(_ testing.TB, name, url string) db {
	return db{name: name, url: url}
})

// forEachDB runs fn in a subtest per database of databases.
func forEachDB(t *testing.T, fn func(t *testing.T, d db)) {
	testenv.EachBackend(t, databases, fn)
}

// open opens and migrates a store on d and returns the default Router of
// the tests: queue/# in queue mode, every other topic fanout.
func (d db) open(t testing.TB) (*persist.Router, *sqlstore.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlstore.Open(ctx, d.url, nil)
	if err != nil {
		t.Fatalf("open %s: %v", d.name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", d.name, err)
	}
	r, err := persist.NewRouter(
		persist.Rule{Name: "queue", Filter: "queue/#", Store: s, Mode: persist.Queue},
		persist.Rule{Name: "fanout", Filter: "#", Store: s},
	)
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

func logger() *slog.Logger {
	if os.Getenv("MQTTPERSIST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// broker is a running mochi server with the Hook, listening on a loopback
// port.
type broker struct {
	t      testing.TB
	server *mqtt.Server
	hook   *mochi.Hook
	addr   string
	once   sync.Once
}

func startBroker(t testing.TB, store persist.Store, opts *mochi.Options, caps func(*mqtt.Capabilities)) *broker {
	t.Helper()
	mopts := &mqtt.Options{Logger: logger(), InlineClient: true}
	if caps != nil {
		mopts.Capabilities = mqtt.NewDefaultServerCapabilities()
		caps(mopts.Capabilities)
	}
	server := mqtt.New(mopts)
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	var h *mochi.Hook
	if store != nil {
		h = mochi.New(server, store, opts)
		if err := server.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, server: server, hook: h, addr: l.Address()}
	t.Cleanup(b.close)
	return b
}

func (b *broker) close() {
	b.once.Do(func() { _ = b.server.Close() })
}

// The MQTT client of the tests is internal/mqtttest's, shared with the
// example programs' tests.
type (
	client   = mqtttest.Client
	connOpts = mqtttest.Options
)

func dial(t testing.TB, addr, id string, o connOpts) *client {
	t.Helper()
	return mqtttest.Dial(t, addr, id, o)
}

func dialErr(t testing.TB, addr, id string, o connOpts) (*client, error) {
	t.Helper()
	return mqtttest.DialErr(t, addr, id, o)
}

var (
	payloads = mqtttest.Payloads
	numbered = mqtttest.Numbered
	sorted   = mqtttest.Sorted
	summary  = mqtttest.Summary
	diff     = mqtttest.Diff
	equal    = slices.Equal[[]string]
)

func head(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}
