package mochi_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttpersist/mqttpersist/memstore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// spyRouter is the real Router over the real store, counting what
// FetchOffline hands out.
type spyRouter struct {
	*persist.Router
	fetches  atomic.Int64
	maxFetch atomic.Int64
	maxLimit atomic.Int64
}

func (s *spyRouter) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	msgs, err := s.Router.FetchOffline(ctx, clientID, filter, opt)
	s.fetches.Add(1)
	storeMax(&s.maxFetch, int64(len(msgs)))
	storeMax(&s.maxLimit, int64(opt.Limit))
	return msgs, err
}

func storeMax(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

// watchInflight samples the broker's count of in-flight messages until
// stop is closed and returns the highest it saw.
func watchInflight(b *broker, stop <-chan struct{}) func() int64 {
	var hi atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			storeMax(&hi, atomic.LoadInt64(&b.server.Info.Inflight))
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return func() int64 { <-done; return hi.Load() }
}

// A large backlog reaches a client that takes 10 messages at a time
// (Receive Maximum 10) through a broker whose inflight limit is 64: paged,
// in order, none dropped, never more in flight than the client allows,
// pages of at most 16 × Options.Page.
func TestReplayIsPagedAndFlowControlled(t *testing.T) {
	n := 20_000
	if raceEnabled {
		n = 4_000 // the race detector slows the SQLite driver down 20 times
	}
	if testing.Short() {
		n = 2_000
	}
	if v, err := strconv.Atoi(os.Getenv("MQTTPERSIST_REPLAY_N")); err == nil && v > 0 {
		n = v // MQTTPERSIST_REPLAY_N=100000 for the full-size run
	}
	d := sqliteDB(t)
	r, _ := d.open(t)
	spy := &spyRouter{Router: r}
	b := startBroker(t, spy, &mochi.Options{Window: 64}, func(c *mqtt.Capabilities) { c.MaximumInflight = 64 })

	sub := dial(t, b.addr, "sub-big", connOpts{Expiry: 3600, ReceiveMax: 10})
	sub.Subscribe("big/#", 1)
	sub.Disconnect()

	// The backlog arrives while the client is away: stored in batches
	// through the Router (publishing 100,000 messages one by one through
	// MQTT would only test the publish path).
	ctx := context.Background()
	want := make([]string, n)
	for i := 0; i < n; i += 200 { // store calls of 200: within the default timeout also under -race
		var batch []*persist.Message
		for j := i; j < min(i+200, n); j++ {
			want[j] = fmt.Sprintf("m%06d", j)
			batch = append(batch, &persist.Message{Topic: fmt.Sprintf("big/%d", j%7), Payload: []byte(want[j]), QoS: 1, From: "loader"})
		}
		if err := r.Publish(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	hi := watchInflight(b, stop)
	var handled atomic.Int64
	slow := func(p *paho.Publish) {
		if handled.Add(1)%997 == 0 {
			time.Sleep(20 * time.Millisecond) // a slow moment now and then
		}
	}
	start := time.Now()
	sub = dial(t, b.addr, "sub-big", connOpts{Expiry: 3600, ReceiveMax: 10, Handler: slow})
	got := payloads(sub.WaitFor(n, 10*time.Minute, 500*time.Millisecond))
	close(stop)
	elapsed := time.Since(start)
	if !equal(got, want) {
		t.Fatalf("%s", diff(got, want))
	}
	if h := hi(); h > 10 {
		t.Errorf("up to %d messages in flight; the client's Receive Maximum is 10", h)
	}
	if dropped := atomic.LoadInt64(&b.server.Info.InflightDropped); dropped != 0 {
		t.Errorf("mochi dropped %d messages", dropped)
	}
	// Pages grow while the client is behind, to 16 × Options.Page.
	if m := spy.maxFetch.Load(); m > 16*mochi.DefaultPage+10 {
		t.Errorf("a fetch returned %d messages; pages should stay within 16 × Options.Page (%d) plus what is in flight (10)", m, mochi.DefaultPage)
	}
	st := b.hook.Stats()
	t.Logf("%d messages in %v (%.0f/s), %d fetches, largest page %d, limit %d; stats %+v",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), spy.fetches.Load(), spy.maxFetch.Load(), spy.maxLimit.Load(), st)
	if st.Replayed != uint64(n) {
		t.Errorf("Stats.Replayed = %d, want %d", st.Replayed, n)
	}
	sub.Disconnect()
	sub = dial(t, b.addr, "sub-big", connOpts{Expiry: 3600, ReceiveMax: 10})
	if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("next reconnect: got %d messages again", len(got))
	}
}

// 10 publishers × 2,000 QoS 1 messages to one persistent QoS 1 subscriber,
// with persistence on: all 20,000 arrive, once — also through a broker
// whose inflight limit (100) is far below the burst.
func TestLoadNothingDropped(t *testing.T) {
	pubs, per := 10, 2000
	if testing.Short() {
		per = 200
	}
	if raceEnabled {
		per = 500 // the race detector slows the SQLite driver down 20 times
	}
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, nil, func(c *mqtt.Capabilities) { c.MaximumInflight = 100 })
	sub := dial(t, b.addr, "sub-load", connOpts{Expiry: 3600})
	sub.Subscribe("load/#", 1)

	start := time.Now()
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Go(func() {
			c := dial(t, b.addr, fmt.Sprintf("pub-load-%d", p), connOpts{Clean: true})
			for i := range per {
				c.Publish(fmt.Sprintf("load/%d", p), []byte(fmt.Sprintf("p%d-%d", p, i)), 1, false)
			}
		})
	}
	wg.Wait()
	total := pubs * per
	got := payloads(sub.WaitFor(total, 5*time.Minute, 500*time.Millisecond))
	elapsed := time.Since(start)
	var want []string
	for p := range pubs {
		want = append(want, numbered(fmt.Sprintf("p%d-", p), per)...)
	}
	if !equal(sorted(got), sorted(want)) {
		t.Fatalf("%s", diff(got, want))
	}
	// Each publisher's messages arrive in the order it sent them.
	next := map[string]int{}
	for _, g := range got {
		var p, i int
		fmt.Sscanf(g, "p%d-%d", &p, &i)
		k := strconv.Itoa(p)
		if i != next[k] {
			t.Fatalf("publisher %d: got message %d after %d", p, i, next[k]-1)
		}
		next[k] = i + 1
	}
	if dropped := atomic.LoadInt64(&b.server.Info.InflightDropped); dropped != 0 {
		t.Errorf("mochi dropped %d messages", dropped)
	}
	t.Logf("%d messages in %v (%.0f/s); stats %+v", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), b.hook.Stats())
}

// A live subscriber that cannot keep up overflows its memory buffer; the
// messages dropped from memory come from the store, in order, once.
func TestSlowLiveSubscriberSpillsToStore(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, &mochi.Options{Window: 5, Buffer: 20}, nil)
	// The subscriber takes nothing until the publisher is done, and then
	// 1 ms a message: memory fills and spills however slow the publisher
	// (a store write per message) is on a loaded machine.
	release := make(chan struct{})
	slow := func(*paho.Publish) {
		<-release
		time.Sleep(time.Millisecond)
	}
	sub := dial(t, b.addr, "sub-slow", connOpts{Expiry: 3600, Handler: slow})
	sub.Subscribe("slow/#", 1)
	pub := dial(t, b.addr, "pub-slow", connOpts{Clean: true})
	want := numbered("s", 300)
	for _, p := range want {
		pub.Publish("slow/x", []byte(p), 1, false)
	}
	close(release)
	got := payloads(sub.WaitFor(len(want), time.Minute, 500*time.Millisecond))
	if !equal(got, want) {
		t.Fatalf("%s", diff(got, want))
	}
	st := b.hook.Stats()
	if st.Spilled == 0 || st.Replayed == 0 {
		t.Errorf("stats %+v: expected messages spilled from memory and replayed from the store", st)
	}
	t.Logf("stats %+v", st)
}

// slowFetch is the real Router whose FetchOffline takes delay longer, as
// a busy database or an async outbox that must drain first makes it:
// before it reads the store, or (after) between the read and the return,
// as a database's does that sends a large result over a busy connection.
type slowFetch struct {
	*persist.Router
	delay time.Duration
	after bool
}

func (s slowFetch) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	if !s.after {
		time.Sleep(s.delay)
	}
	msgs, err := s.Router.FetchOffline(ctx, clientID, filter, opt)
	if s.after {
		time.Sleep(s.delay)
	}
	return msgs, err
}

// A subscriber that fell behind a steady stream — its messages spilled to
// the store — catches up while the stream goes on and is delivered live
// again, although every fetch costs 50 ms, in which the stream (~1,000
// msgs/s) overfills the 20 messages of memory: pages grow while it is
// behind (at a fixed page of 10 it would replay at most ~400 msgs/s and
// stay on the store until the stream stopped), and a spill during a fetch
// that returned the spilled messages does not send it back to the store
// (else every fetch would: it would never go live).
//
// The "read first" cases take the 50 ms after the fetch's read: what the
// stream brings meanwhile is not in its result, and overfills Buffer; it
// is held in memory while the delivery replays the store (up to
// fetchGrace × Buffer), or every fetch would end with a spill of messages
// it did not return, and the delivery would stay on the store while the
// stream lasted.
func TestBehindUnderLoadGoesLive(t *testing.T) {
	t.Run("durable", func(t *testing.T) { behindUnderLoad(t, false, false) })
	// Async: a message is in memory a moment before the outbox writes it,
	// so a fetch does not return the latest ones spilled while it ran.
	t.Run("async", func(t *testing.T) { behindUnderLoad(t, true, false) })
	t.Run("durable/read first", func(t *testing.T) { behindUnderLoad(t, false, true) })
	t.Run("async/read first", func(t *testing.T) { behindUnderLoad(t, true, true) })
}

func behindUnderLoad(t *testing.T, async, readFirst bool) {
	// The in-memory store: as fast under the race detector as without, so
	// that the stream outpaces the replay in both.
	s := memstore.New()
	var store persist.Store = s
	if async {
		p, err := persist.NewPipeline(s, &persist.PipelineOptions{Mode: persist.Async, Outbox: t.TempDir(), Interval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		store = p
	}
	r, err := persist.NewRouter(persist.Rule{Name: "fanout", Filter: "#", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	// Under the race detector everything is slower: a slower stream and
	// fetch, in the same proportion to what a fixed page could replay.
	// (With other test packages sharing the cores, as in CI, the race
	// detector's stream is slower still: headroom of ~10× between what a
	// grown page replays and the stream.)
	n, gap, fetch := 4000, time.Millisecond, 50*time.Millisecond
	if raceEnabled {
		n, gap, fetch = 2000, 6*time.Millisecond, 300*time.Millisecond
	}
	b := startBroker(t, slowFetch{r, fetch, readFirst}, &mochi.Options{Window: 10, Page: 20, Buffer: 20}, nil)
	var got atomic.Int64
	slow := func(*paho.Publish) {
		if got.Add(1) <= 100 {
			time.Sleep(10 * time.Millisecond) // behind at first
		}
	}
	sub := dial(t, b.addr, "sub-behind", connOpts{Expiry: 3600, Handler: slow})
	sub.Subscribe("behind/#", 1)
	pub := dial(t, b.addr, "pub-behind", connOpts{Clean: true})
	want := numbered("b", n)
	start := time.Now()
	var liveAt int64 // delivered live when the last quarter was published
	for i, p := range want {
		if i == 3*len(want)/4 {
			liveAt = int64(b.hook.Stats().Live)
		}
		pub.Publish("behind/x", []byte(p), 1, false)
		// A steady stream of ~1,000 msgs/s (or what the broker takes).
		if ahead := time.Until(start.Add(time.Duration(i) * gap)); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	all := payloads(sub.WaitFor(len(want), time.Minute, 500*time.Millisecond))
	if !equal(all, want) {
		t.Fatalf("%s", diff(all, want))
	}
	st := b.hook.Stats()
	t.Logf("stats %+v; live when the last quarter began: %d; stream %v", st, liveAt, time.Since(start))
	if st.Spilled == 0 {
		t.Fatalf("stats %+v: the slow start spilled nothing; the test does not test what it says", st)
	}
	if late := int64(st.Live) - liveAt; late < int64(len(want))/8 {
		t.Errorf("%d of the last %d messages went live: the subscriber did not catch up while the stream went on", late, len(want)/4)
	}
}
