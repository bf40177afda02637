package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// heard is a watch's notices, each with the moment it was heard.
type heard struct {
	ch chan notice
}

type notice struct {
	persist.Notice
	at time.Time
}

func newHeard() *heard { return &heard{ch: make(chan notice, 1024)} }

func (h *heard) fn(n persist.Notice) { h.ch <- notice{n, time.Now()} }

// next returns the next notice that keep accepts (nil keeps all), or
// fails after d.
func (h *heard) next(t *testing.T, d time.Duration, keep func(persist.Notice) bool) notice {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case n := <-h.ch:
			if keep == nil || keep(n.Notice) {
				return n
			}
		case <-deadline:
			t.Fatalf("no notice within %v", d)
			return notice{}
		}
	}
}

// none fails if a notice of a topic that keep accepts comes within d.
func (h *heard) none(t *testing.T, d time.Duration, keep func(persist.Notice) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case n := <-h.ch:
			if keep(n.Notice) {
				t.Errorf("unexpected notice %+v", n.Notice)
			}
		case <-deadline:
			return
		}
	}
}

func topicIs(name string) func(persist.Notice) bool {
	return func(n persist.Notice) bool { return n.Topic == name }
}

func watchOf(t *testing.T, st *redisstore.Store, h *heard, filters ...string) persist.Watch {
	t.Helper()
	w, err := st.Watch(t.Context(), h.fn)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	if len(filters) > 0 {
		if err := w.Add(t.Context(), filters...); err != nil {
			t.Fatalf("Add(%q): %v", filters, err)
		}
	}
	return w
}

func publishOn(t *testing.T, st persist.Store, topic, node string) *persist.Message {
	t.Helper()
	m := msg(topic, persist.Fanout)
	m.Node = node
	if err := st.Publish(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWatchLatency: a watch on one store value hears what another store
// value (a client of its own: another node) publishes within 200 ms at
// the 99th percentile of 200 publishes, counted from the start of Publish
// (the notice is sent before Publish returns, so counted from its return
// — when a broker sends PUBACK — most notices are early: 0).
func TestWatchLatency(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		a := newStore(t, c, nil)
		b := sharedStore(t, c, a, nil)
		h := newHeard()
		watchOf(t, a, h, "lat/+/t")
		const n = 200
		fromStart := make([]time.Duration, 0, n)
		fromReturn := make([]time.Duration, 0, n)
		for i := range n {
			name := fmt.Sprintf("lat/%d/t", i)
			start := time.Now()
			publishOn(t, b, name, "node-b")
			done := time.Now()
			got := h.next(t, 5*time.Second, topicIs(name))
			if got.Node != "node-b" {
				t.Errorf("notice of %s: node %q, want node-b", name, got.Node)
			}
			fromStart = append(fromStart, got.at.Sub(start))
			fromReturn = append(fromReturn, max(got.at.Sub(done), 0))
		}
		slices.Sort(fromStart)
		slices.Sort(fromReturn)
		p := func(d []time.Duration, q int) time.Duration { return d[n*q/100] }
		t.Logf("Publish on store B → notice on store A's watch, %d publishes: from Publish's start p50 %v, p99 %v, max %v; from its return p50 %v, p99 %v",
			n, p(fromStart, 50), p(fromStart, 99), fromStart[n-1], p(fromReturn, 50), p(fromReturn, 99))
		// The figures go to BENCHMARKS.md; a loaded machine is no
		// reason to fail (timings are measured, not asserted).
	})
}

// TestWatch: which topics a watch hears, filter counts, shared filters,
// invalid filters, client notices, and Close.
func TestWatch(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		a := newStore(t, c, nil)
		b := sharedStore(t, c, a, nil)
		h := newHeard()
		w := watchOf(t, a, h, "w/+/t", "w/exact", "w/hash/#", "$share/g/w/shared/+", "w/[glob]*?/\\")

		// Heard: each filter's topics; not heard: the rest. A notice of
		// an unwatched topic would come before the next watched one.
		for _, tc := range []struct {
			topic string
			heard bool
		}{
			{"w/x/t", true}, {"w/x/y/t", false}, {"w/exact", true}, {"w/exactly", false},
			{"w/hash", true}, {"w/hash/a/b", true}, {"w/hashed", false}, {"w/hash/t", true}, // w/hash/# and w/+/t: once
			{"w/shared/1", true}, {"w/shared/1/2", false},
			{"w/[glob]*?/\\", true}, {"w/gxob]*?/\\", false}, {"other/t", false},
		} {
			publishOn(t, b, tc.topic, "b")
			if !tc.heard {
				continue
			}
			got := h.next(t, 5*time.Second, nil)
			if got.Topic != tc.topic {
				t.Errorf("heard %q, want %q (topics published since the last notice: none watched)", got.Topic, tc.topic)
			}
		}
		// A whole batch: one notice per topic.
		batch := []*persist.Message{msg("w/1/t", persist.Fanout), msg("w/1/t", persist.Fanout), msg("w/2/t", persist.Fanout), msg("no/t", persist.Fanout)}
		if err := b.Publish(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		var topics []string
		for range 2 {
			topics = append(topics, h.next(t, 5*time.Second, nil).Topic)
		}
		if slices.Sort(topics); !slices.Equal(topics, []string{"w/1/t", "w/2/t"}) {
			t.Errorf("notices of a batch: %q, want w/1/t and w/2/t", topics)
		}
		h.none(t, 300*time.Millisecond, func(persist.Notice) bool { return true })

		// Counts: added twice, watched until removed twice.
		if err := w.Add(ctx, "cnt/t", "cnt/t", "cnt/+"); err != nil {
			t.Fatal(err)
		}
		if err := w.Remove(ctx, "cnt/t", "cnt/+", "never/added"); err != nil {
			t.Fatal(err)
		}
		publishOn(t, b, "cnt/t", "b")
		h.next(t, 5*time.Second, topicIs("cnt/t"))
		if err := w.Remove(ctx, "cnt/t"); err != nil {
			t.Fatal(err)
		}
		publishOn(t, b, "cnt/t", "b")
		publishOn(t, b, "w/after/t", "b")
		if got := h.next(t, 5*time.Second, nil); got.Topic != "w/after/t" {
			t.Errorf("after removing cnt/t twice: heard %q", got.Topic)
		}

		// Invalid filters: nothing added.
		err := w.Add(ctx, "inv/t", "inv/#/x")
		var pe *persist.Error
		if !errors.Is(err, persist.ErrInvalid) || !errors.As(err, &pe) || pe.Op != "Watch.Add" {
			t.Errorf("Add with an invalid filter: %v, want ErrInvalid of Watch.Add", err)
		}
		publishOn(t, b, "inv/t", "b")
		publishOn(t, b, "w/after2/t", "b")
		if got := h.next(t, 5*time.Second, nil); got.Topic != "w/after2/t" {
			t.Errorf("after a failed Add: heard %q", got.Topic)
		}

		// Client notices reach every watch, whatever its filters.
		at := time.Now().Truncate(time.Millisecond)
		if err := b.Connected(ctx, &persist.Client{ID: "taker", Node: "node-b", Online: true, OnlineAt: at}); err != nil {
			t.Fatal(err)
		}
		got := h.next(t, 5*time.Second, nil)
		if got.Client != "taker" || got.Node != "node-b" || !got.At.Equal(at) || got.Topic != "" {
			t.Errorf("client notice %+v, want taker on node-b at %v", got.Notice, at)
		}
		// A disconnect, applied or not (here from a node the client is
		// not on), is told with Offline: that node has the client's acks.
		if err := b.Connected(ctx, &persist.Client{ID: "taker", Node: "node-c", Online: false, OfflineAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		got = h.next(t, 5*time.Second, nil)
		if got.Client != "taker" || got.Node != "node-c" || !got.Offline || got.Topic != "" {
			t.Errorf("client notice of a disconnect %+v, want taker offline on node-c", got.Notice)
		}

		// Close: no notices after it; Add fails; closing again is nil.
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		publishOn(t, b, "w/closed/t", "b")
		h.none(t, 300*time.Millisecond, func(persist.Notice) bool { return true })
		if err := w.Add(ctx, "x"); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("Add after Close: %v, want ErrClosed", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close again: %v", err)
		}
	})
}

// TestWatchEnds: a watch ends with its context, and with its store's
// Close; a closed store starts none.
func TestWatchEnds(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		a := newStore(t, c, nil)
		b := sharedStore(t, c, a, nil)
		h := newHeard()
		ctx, cancel := context.WithCancel(t.Context())
		w, err := a.Watch(ctx, h.fn)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(ctx, "end/t"); err != nil {
			t.Fatal(err)
		}
		cancel()
		deadline := time.Now().Add(5 * time.Second)
		for w.Add(t.Context(), "end/u") == nil {
			if time.Now().After(deadline) {
				t.Fatal("the watch still works 5s after its context ended")
			}
			time.Sleep(10 * time.Millisecond)
		}
		publishOn(t, b, "end/t", "b")
		h.none(t, 300*time.Millisecond, func(persist.Notice) bool { return true })

		w2 := watchOf(t, a, h, "end/t")
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w2.Add(t.Context(), "end/v"); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("Add after the store's Close: %v, want ErrClosed", err)
		}
		publishOn(t, b, "end/t", "b")
		h.none(t, 300*time.Millisecond, func(persist.Notice) bool { return true })
		if _, err := a.Watch(t.Context(), h.fn); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("Watch on a closed store: %v, want ErrClosed", err)
		}
	})
}

// conns is a dialer that keeps the connections it made, so that a test
// can break them.
type conns struct {
	mu    sync.Mutex
	all   []*stallConn
	stall bool // new connections stall too
}

func (cs *conns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: c, stalled: make(chan struct{})}
	cs.mu.Lock()
	cs.all = append(cs.all, sc)
	cs.mu.Unlock()
	return sc, nil
}

// closeAll closes every connection made so far.
func (cs *conns) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.all {
		c.Close()
	}
	cs.all = nil
}

// stallAll makes every connection made so far stop delivering what it
// reads, as a connection to a server that vanished without a reset.
func (cs *conns) stallAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.all {
		c.once.Do(func() { close(c.stalled) })
	}
	cs.all = nil
}

type stallConn struct {
	net.Conn
	once    sync.Once
	stalled chan struct{}
}

// Read reads as the connection does until it stalls; then it drops what
// arrives, so that a read ends only at its deadline, as with a silent peer.
func (c *stallConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		select {
		case <-c.stalled:
			if err != nil {
				return 0, err
			}
			continue
		default:
		}
		return n, err
	}
}

// dialClient returns a client of c's topology that dials through cs.
func dialClient(t *testing.T, c redis.UniversalClient, cs *conns) redis.UniversalClient {
	var n redis.UniversalClient
	switch x := c.(type) {
	case *redis.ClusterClient:
		n = redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t), Dialer: cs.dial})
	case *redis.Client:
		if x.Options().Addr == "FailoverClient" {
			addrs, master := testenv.RedisSentinel(t)
			n = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: addrs, Dialer: cs.dial})
		} else {
			o, err := redis.ParseURL(testenv.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			o.Dialer = cs.dial
			n = redis.NewClient(o)
		}
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestWatchReconnect: a watch whose connection breaks makes it again,
// tells fn with an empty Notice, and hears what is published afterwards.
func TestWatchReconnect(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		cs := &conns{}
		base := newStore(t, c, nil)
		a, err := redisstore.New(dialClient(t, c, cs), &redisstore.Options{Prefix: base.Prefix()})
		if err != nil {
			t.Fatal(err)
		}
		b := sharedStore(t, c, base, nil)
		h := newHeard()
		watchOf(t, a, h, "re/+", "re/exact")
		publishOn(t, b, "re/1", "b")
		h.next(t, 5*time.Second, topicIs("re/1"))

		cs.closeAll() // a reset connection
		reconnected := h.next(t, 10*time.Second, nil)
		if reconnected.Notice != (persist.Notice{}) {
			t.Fatalf("after the connection broke: %+v, want an empty Notice", reconnected.Notice)
		}
		for _, name := range []string{"re/2", "re/exact"} {
			publishOn(t, b, name, "b")
			h.next(t, 5*time.Second, topicIs(name))
		}

		cs.stallAll() // a silent connection: the watch's PING finds it
		reconnected = h.next(t, 15*time.Second, nil)
		if reconnected.Notice != (persist.Notice{}) {
			t.Fatalf("after the connection went silent: %+v, want an empty Notice", reconnected.Notice)
		}
		for _, name := range []string{"re/3", "re/exact"} {
			publishOn(t, b, name, "b")
			h.next(t, 5*time.Second, topicIs(name))
		}
	})
}

// TestWatchNodes: with 1, 2 and 4 nodes (store values with clients of
// their own, one watch each), a notice reaches only the nodes that watch
// its topic: node i watches n/<i>/+ and all watch n/all; 20 publishes to
// node 0's topic are heard by node 0 alone, one to n/all by every node.
func TestWatchNodes(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		base := newStore(t, c, nil)
		pub := sharedStore(t, c, base, nil)
		for _, nodes := range []int{1, 2, 4} {
			hs := make([]*heard, nodes)
			for i := range nodes {
				hs[i] = newHeard()
				watchOf(t, sharedStore(t, c, base, nil), hs[i], fmt.Sprintf("n%d/%d/+", nodes, i), fmt.Sprintf("n%d/all", nodes))
			}
			for j := range 20 {
				publishOn(t, pub, fmt.Sprintf("n%d/0/%d", nodes, j), "p")
			}
			publishOn(t, pub, fmt.Sprintf("n%d/all", nodes), "p")
			counts := make([]int, nodes)
			for i, h := range hs {
				want := 1
				if i == 0 {
					want = 21
				}
				for range want {
					h.next(t, 5*time.Second, nil)
					counts[i]++
				}
				h.none(t, 200*time.Millisecond, func(persist.Notice) bool { return true })
			}
			t.Logf("%d nodes: notices heard per node %v (node 0 watches the 20 publishes' topic, every node n%d/all)", nodes, counts, nodes)
			if _, cluster := c.(*redis.ClusterClient); !cluster {
				// Redis itself sends node 0's topic to node 0 alone (a
				// Cluster node counts only its own receivers).
				for name, want := range map[string]int64{fmt.Sprintf("n%d/0/x", nodes): 1, fmt.Sprintf("n%d/all", nodes): int64(nodes)} {
					if n, err := c.Publish(t.Context(), base.Prefix()+":notify:"+name, "p").Result(); err != nil || n != want {
						t.Errorf("%d nodes: PUBLISH of a notice of %s reached %d, %v; want %d", nodes, name, n, err, want)
					}
				}
			}
		}
	})
}
