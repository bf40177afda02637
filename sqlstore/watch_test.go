package sqlstore_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// twoNodes opens two stores on db with their own connection pools, as two
// broker nodes sharing the database.
func twoNodes(t *testing.T, db testDB) (a, b *sqlstore.Store) {
	t.Helper()
	a = db.open(t, nil)
	b = db.open(t, nil)
	return a, b
}

func publishOn(t *testing.T, st *sqlstore.Store, name, node string) {
	t.Helper()
	m := &persist.Message{ID: persist.NewID(), Topic: name, Payload: []byte("x"), QoS: 1, Node: node, Time: time.Now()}
	if err := st.Publish(t.Context(), m); err != nil {
		t.Fatalf("Publish(%s): %v", name, err)
	}
}

// TestWatchLatency has node A watch a filter while node B publishes 200
// messages, one at a time, each to a topic of its own: A hears of each
// within 200 ms (p99) of B's Publish returning, with B's node name.
func TestWatchLatency(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		a, b := twoNodes(t, db)
		ns := make(persisttest.Notices, 1024)
		w, err := a.Watch(t.Context(), ns.Fn)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Add(t.Context(), "lat/#"); err != nil {
			t.Fatal(err)
		}
		const n = 200
		lat := make([]time.Duration, 0, n)
		for i := range n {
			name := fmt.Sprintf("lat/%d", i)
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
		t.Logf("%s: Publish on B returned → notice on A, %d publishes: p50 %v, p99 %v, max %v", db.dialect, n, p50, p99, lat[n-1])
		// The figures go to BENCHMARKS.md; a loaded machine is no
		// reason to fail (timings are measured, not asserted).
	})
}
