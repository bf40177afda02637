package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/mongostore"
	"github.com/mqttpersist/mqttpersist/persist"
)

// notices collects a watch's notices.
type notices chan persist.Notice

func (n notices) fn(x persist.Notice) { n <- x }

// next waits up to d for a notice that ok accepts and returns it; the
// notices it skips are returned too.
func (n notices) next(t *testing.T, d time.Duration, ok func(persist.Notice) bool) (persist.Notice, []persist.Notice, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var skipped []persist.Notice
	for {
		select {
		case x := <-n:
			if ok(x) {
				return x, skipped, true
			}
			skipped = append(skipped, x)
		case <-timer.C:
			return persist.Notice{}, skipped, false
		}
	}
}

func topicIs(name string) func(persist.Notice) bool {
	return func(x persist.Notice) bool { return x.Topic == name }
}

// twoNodes opens two stores on a fresh database, as two broker nodes
// sharing it.
func twoNodes(t *testing.T) (a, b *mongostore.Store) {
	t.Helper()
	db := freshDB(t)
	a = newStore(t, db, nil)
	b, err := mongostore.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

func publishOn(t *testing.T, st *mongostore.Store, name, node string) {
	t.Helper()
	m := &persist.Message{ID: persist.NewID(), Topic: name, Payload: []byte("x"), QoS: 1, Node: node, Time: time.Now()}
	if err := st.Publish(t.Context(), m); err != nil {
		t.Fatalf("Publish(%s): %v", name, err)
	}
}

// TestWatchLatency has node A watch a filter while node B publishes 200
// messages, one at a time, each to a topic of its own: A hears of each
// within 200 ms (p99) of B's Publish returning, with B's node name: on
// FerretDB, which has no change streams, by polling.
func TestWatchLatency(t *testing.T) {
	a, b := twoNodes(t)
	ns := make(notices, 1024)
	w, err := a.Watch(t.Context(), ns.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !mongostore.Polling(w) {
		t.Errorf("the watch reads a change stream; the test server (FerretDB) has none")
	}
	if err := w.Add(t.Context(), "lat/#"); err != nil {
		t.Fatal(err)
	}
	const n = 100
	lat := make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("lat/%d", i)
		time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond) // not in step with the polls
		publishOn(t, b, name, "nodeB")
		done := time.Now()
		got, _, ok := ns.next(t, 2*time.Second, topicIs(name))
		if !ok {
			t.Fatalf("no notice of %s within 2s", name)
		}
		lat = append(lat, time.Since(done))
		if got.Node != "nodeB" {
			t.Errorf("notice of %s names node %q, want nodeB", name, got.Node)
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[n/2], lat[n*99/100]
	t.Logf("Publish on B returned → notice on A, %d publishes: p50 %v, p99 %v, max %v (polling every %v)", n, p50, p99, lat[n-1], mongostore.DefaultPollInterval)
	// The figures go to BENCHMARKS.md; a loaded machine is no reason to
	// fail (timings are measured, not asserted).
}

// TestWatchFilters checks that a watch hears only of its filters, that
// filters are counted, that a shared filter is watched as its inner
// filter, and that invalid filters are refused.
func TestWatchFilters(t *testing.T) {
	a, b := twoNodes(t)
	ctx := t.Context()
	ns := make(notices, 1024)
	w, err := a.Watch(ctx, ns.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(ctx, "sync/#", "cnt/t", "cnt/t", "$share/g/sh/+"); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, "ok/t", "bad/#/x"); !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("Add with an invalid filter: %v, want ErrInvalid", err)
	}
	seq := 0
	// sync publishes to a topic of sync/# and waits for its notice:
	// what B published before has been polled or notified by then.
	sync := func() []persist.Notice {
		t.Helper()
		seq++
		name := fmt.Sprintf("sync/%d", seq)
		publishOn(t, b, name, "nodeB")
		_, skipped, ok := ns.next(t, 2*time.Second, topicIs(name))
		if !ok {
			t.Fatalf("no notice of %s", name)
		}
		// A notice of the same poll may follow.
		for {
			select {
			case x := <-ns:
				skipped = append(skipped, x)
				continue
			case <-time.After(150 * time.Millisecond):
			}
			return skipped
		}
	}
	heard := func(got []persist.Notice, name string) bool {
		for _, x := range got {
			if x.Topic == name {
				return true
			}
		}
		return false
	}
	publishOn(t, b, "other/t", "nodeB")
	publishOn(t, b, "ok/t", "nodeB")
	publishOn(t, b, "cnt/t", "nodeB")
	publishOn(t, b, "sh/x", "nodeB")
	got := sync()
	if heard(got, "other/t") || heard(got, "ok/t") {
		t.Errorf("heard of an unwatched topic (other/t, or ok/t of a refused Add): %+v", got)
	}
	if !heard(got, "cnt/t") || !heard(got, "sh/x") {
		t.Errorf("did not hear of cnt/t and sh/x: %+v", got)
	}
	if err := w.Remove(ctx, "cnt/t", "never/added", "bad/#/x"); err != nil {
		t.Fatal(err)
	}
	publishOn(t, b, "cnt/t", "nodeB")
	if got := sync(); !heard(got, "cnt/t") {
		t.Errorf("after one Remove of a filter added twice: did not hear of cnt/t: %+v", got)
	}
	if err := w.Remove(ctx, "cnt/t", "$share/g/sh/+"); err != nil {
		t.Fatal(err)
	}
	publishOn(t, b, "cnt/t", "nodeB")
	publishOn(t, b, "sh/x", "nodeB")
	if got := sync(); heard(got, "cnt/t") || heard(got, "sh/x") {
		t.Errorf("after removing cnt/t twice and the shared filter, heard of them: %+v", got)
	}
	// A's own Publish is heard too, with A's node (a node leaves out
	// what it delivered itself).
	publishOn(t, a, "sync/own", "nodeA")
	x, _, ok := ns.next(t, 2*time.Second, topicIs("sync/own"))
	if !ok || x.Node != "nodeA" {
		t.Errorf("notice of A's own publish = %+v, %v; want node nodeA", x, ok)
	}
}

// TestWatchClients checks that a client's connect on one node is heard
// by every watch, whatever its filters, and a disconnect by none.
func TestWatchClients(t *testing.T) {
	a, b := twoNodes(t)
	ctx := t.Context()
	ns1, ns2 := make(notices, 64), make(notices, 64)
	w1, err := a.Watch(ctx, ns1.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := b.Watch(ctx, ns2.fn) // no filters
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if err := w1.Add(ctx, "x/#"); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	if err := b.Connected(ctx, &persist.Client{ID: "cl-1", Node: "nodeB", Online: true, OnlineAt: at}); err != nil {
		t.Fatal(err)
	}
	isClient := func(id string) func(persist.Notice) bool {
		return func(x persist.Notice) bool { return x.Client == id }
	}
	for i, ns := range []notices{ns1, ns2} {
		x, _, ok := ns.next(t, 2*time.Second, isClient("cl-1"))
		if !ok || x.Node != "nodeB" || !x.At.Equal(at) || x.Topic != "" {
			t.Errorf("watch %d: client notice %+v (heard %v), want cl-1 on nodeB at %v", i+1, x, ok, at)
		}
	}
	if err := b.Connected(ctx, &persist.Client{ID: "cl-1", Node: "nodeB", OfflineAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := a.Connected(ctx, &persist.Client{ID: "cl-2", Node: "nodeA", Online: true, OnlineAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	x, skipped, ok := ns2.next(t, 2*time.Second, isClient("cl-2"))
	if !ok || x.Node != "nodeA" {
		t.Errorf("client notice of cl-2 = %+v, %v; want on nodeA", x, ok)
	}
	for _, s := range skipped {
		if s.Client == "cl-1" {
			t.Errorf("heard %+v after cl-1's disconnect", s)
		}
	}
}

// TestWatchClose checks that a closed watch hears nothing and refuses
// Add, and that closing the store closes its watches.
func TestWatchClose(t *testing.T) {
	a, b := twoNodes(t)
	ctx := t.Context()
	ns := make(notices, 64)
	w, err := a.Watch(ctx, ns.fn)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, "c/#"); err != nil {
		t.Fatal(err)
	}
	publishOn(t, b, "c/1", "nodeB")
	if _, _, ok := ns.next(t, 2*time.Second, topicIs("c/1")); !ok {
		t.Fatal("no notice before Close")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	publishOn(t, b, "c/2", "nodeB")
	if x, _, ok := ns.next(t, 300*time.Millisecond, func(persist.Notice) bool { return true }); ok {
		t.Errorf("heard %+v after Close", x)
	}
	if err := w.Add(ctx, "d/#"); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}

	w2, err := a.Watch(ctx, ns.fn)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w2.Add(ctx, "e/#"); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Add on a watch of a closed store: %v, want ErrClosed", err)
	}
	if _, err := a.Watch(ctx, ns.fn); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Watch on a closed store: %v, want ErrClosed", err)
	}
}

// TestWatchManyTopics publishes batches of 200 topics each while a watch
// listens on "#": it hears of every topic, and the server keeps
// answering (FerretDB stops when one bulk write holds too many of its
// connections: the registry writes small ones).
func TestWatchManyTopics(t *testing.T) {
	a, b := twoNodes(t)
	ns := make(notices, 4096)
	w, err := a.Watch(t.Context(), ns.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(t.Context(), "many/#"); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for round := range 3 {
		batch := make([]*persist.Message, 200)
		for i := range batch {
			name := fmt.Sprintf("many/%d/%d", round, i)
			want[name] = true
			batch[i] = &persist.Message{ID: persist.NewID(), Topic: name, Payload: []byte("x"), QoS: 1, Time: time.Now()}
		}
		if err := b.Publish(t.Context(), batch...); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := b.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Ping after publishing to 200 topics: %v", err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		select {
		case x := <-ns:
			delete(want, x.Topic)
		case <-time.After(time.Until(deadline)):
		}
	}
	if len(want) > 0 {
		t.Errorf("heard of no publish to %d of the 600 topics", len(want))
	}
}
