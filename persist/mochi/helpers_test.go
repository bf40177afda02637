package mochi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

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
	return db{name: "sqlite", url: "sqlite://" + filepath.Join(t.TempDir(), "mqtt.db")}
}

// dbs returns the databases to run a test on: SQLite always, PostgreSQL
// and MySQL when their servers are there (testenv decides skip or fail).
func forEachDB(t *testing.T, fn func(t *testing.T, d db)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteDB(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, db{name: "postgres", url: testenv.PostgresURL(t)}) })
	t.Run("mysql", func(t *testing.T) { fn(t, db{name: "mysql", url: testenv.MySQLURL(t)}) })
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

// client is a paho (MQTT 5) client that records what it receives.
type client struct {
	t    testing.TB
	id   string
	pc   *paho.Client
	mu   sync.Mutex
	got  []*paho.Publish
	more chan struct{}
	ca   *paho.Connack
}

type connOpts struct {
	clean      bool
	expiry     uint32 // session expiry interval
	receiveMax uint16
	// handler, when set, runs for each message before it is acknowledged.
	handler func(*paho.Publish)
}

func dial(t testing.TB, addr, id string, o connOpts) *client {
	t.Helper()
	c, err := dialErr(t, addr, id, o)
	if err != nil {
		t.Fatalf("connect %q: %v", id, err)
	}
	return c
}

func dialErr(t testing.TB, addr, id string, o connOpts) (*client, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &client{t: t, id: id, more: make(chan struct{}, 1)}
	c.pc = paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			if o.handler != nil {
				o.handler(r.Packet)
			}
			c.mu.Lock()
			c.got = append(c.got, r.Packet)
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
			return true, nil
		}},
	})
	cp := &paho.Connect{ClientID: id, CleanStart: o.clean, KeepAlive: 30, Properties: &paho.ConnectProperties{}}
	if o.expiry > 0 {
		cp.Properties.SessionExpiryInterval = &o.expiry
	}
	if o.receiveMax > 0 {
		cp.Properties.ReceiveMaximum = &o.receiveMax
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.pc.Connect(ctx, cp)
	if err != nil {
		return nil, err
	}
	c.ca = ca
	t.Cleanup(func() { c.disconnect() })
	return c, nil
}

func (c *client) disconnect() {
	select {
	case <-c.pc.Done():
		return
	default:
	}
	_ = c.pc.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.pc.Done():
	case <-time.After(5 * time.Second):
	}
}

func (c *client) subscribe(filter string, qos byte) {
	c.t.Helper()
	c.subscribeOpts(paho.SubscribeOptions{Topic: filter, QoS: qos})
}

func (c *client) subscribeOpts(opts ...paho.SubscribeOptions) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := c.pc.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		c.t.Fatalf("%s: subscribe: %v", c.id, err)
	}
	for i, rc := range sa.Reasons {
		if rc >= 0x80 {
			c.t.Fatalf("%s: subscribe %q: reason %#x", c.id, opts[i].Topic, rc)
		}
	}
}

func (c *client) unsubscribe(filters ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.pc.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters}); err != nil {
		c.t.Fatalf("%s: unsubscribe: %v", c.id, err)
	}
}

func (c *client) publish(topic string, payload []byte, qos byte, retain bool) {
	c.t.Helper()
	c.publishMsg(&paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
}

func (c *client) publishMsg(p *paho.Publish) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.pc.Publish(ctx, p); err != nil {
		c.t.Fatalf("%s: publish %q: %v", c.id, p.Topic, err)
	}
}

// received returns a copy of what the client got so far.
func (c *client) received() []*paho.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*paho.Publish(nil), c.got...)
}

// waitFor waits until the client got n messages (or the timeout ran out),
// then waits quiet for anything beyond n, and returns all it got.
func (c *client) waitFor(n int, timeout, quiet time.Duration) []*paho.Publish {
	c.t.Helper()
	deadline := time.After(timeout)
	for len(c.received()) < n {
		select {
		case <-c.more:
		case <-deadline:
			got := c.received()
			c.t.Fatalf("%s: got %d messages, want %d: %s", c.id, len(got), n, summary(got))
		}
	}
	time.Sleep(quiet)
	return c.received()
}

func summary(ps []*paho.Publish) string {
	var b strings.Builder
	for i, p := range ps {
		if i == 20 {
			fmt.Fprintf(&b, " …(%d more)", len(ps)-20)
			break
		}
		fmt.Fprintf(&b, " %s=%q", p.Topic, p.Payload)
	}
	return b.String()
}

// payloads returns the payloads as strings.
func payloads(ps []*paho.Publish) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

// numbered returns "prefix0" … "prefix<n-1>".
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// diff describes how got differs from want.
func diff(got, want []string) string {
	cnt := map[string]int{}
	for _, w := range want {
		cnt[w]++
	}
	var extra, missing []string
	for _, g := range got {
		if cnt[g] == 0 {
			extra = append(extra, g)
			continue
		}
		cnt[g]--
	}
	for _, w := range want {
		if cnt[w] > 0 {
			missing = append(missing, w)
			cnt[w]--
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		for i := range got {
			if got[i] != want[i] {
				return fmt.Sprintf("the same %d messages, out of order from #%d: got %v, want %v", len(got), i, head(got[i:]), head(want[i:]))
			}
		}
	}
	return fmt.Sprintf("got %d, want %d; missing %d %v; extra or repeated %d %v",
		len(got), len(want), len(missing), head(missing), len(extra), head(extra))
}

func head(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}
