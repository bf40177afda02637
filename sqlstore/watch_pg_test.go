package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
)

func openPG(t *testing.T, url string) *Store {
	t.Helper()
	st, err := Open(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

// rawListen counts the notifications on a channel, read on a connection
// of its own.
func rawListen(t *testing.T, url, channel string) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	counts := make(chan int, 1)
	counts <- 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				return
			}
			counts <- <-counts + 1
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
	})
	return func() int {
		n := <-counts
		counts <- n
		return n
	}
}

// TestNotifyOnlyMatching has 1, 2 and 4 nodes watch one filter each on
// PostgreSQL while another node publishes to the first node's filter: only
// the first node's channel gets notifications, one per Publish, however
// many nodes watch other filters.
func TestNotifyOnlyMatching(t *testing.T) {
	url := testenv.PostgresURL(t)
	pub := openPG(t, url)
	for _, nodes := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) {
			counts := make([]func() int, nodes)
			for i := range nodes {
				st := openPG(t, url)
				w, err := st.Watch(t.Context(), func(persist.Notice) {})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { w.Close() })
				if err := w.Add(t.Context(), fmt.Sprintf("m%d/n%d/#", nodes, i)); err != nil {
					t.Fatal(err)
				}
				counts[i] = rawListen(t, url, w.(*watch).b.(*listen).channel)
			}
			const n = 100
			for i := range n {
				m := &persist.Message{ID: persist.NewID(), Topic: fmt.Sprintf("m%d/n0/%d", nodes, i%7), Payload: []byte("x"), QoS: 1}
				if err := pub.Publish(t.Context(), m); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(2 * time.Second)
			for counts[0]() < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			got := make([]int, nodes)
			for i := range got {
				got[i] = counts[i]()
			}
			t.Logf("%d nodes: notifications per node channel after %d publishes to node 0's filter: %v", nodes, n, got)
			if got[0] != n {
				t.Errorf("node 0 got %d notifications, want %d", got[0], n)
			}
			for i := 1; i < nodes; i++ {
				if got[i] != 0 {
					t.Errorf("node %d, whose filter matches none of the topics, got %d notifications", i, got[i])
				}
			}
		})
	}
}

// TestNotifyStaleCache has a publisher whose cache of the watch table was
// loaded before a watch was added: its next Publish still notifies the
// watch (after the commit, once it saw the newer version).
func TestNotifyStaleCache(t *testing.T) {
	url := testenv.PostgresURL(t)
	pub := openPG(t, url)
	st := openPG(t, url)
	publish := func(name string) {
		t.Helper()
		if err := pub.Publish(t.Context(), &persist.Message{ID: persist.NewID(), Topic: name, Payload: []byte("x"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	publish("stale/0") // loads the (empty) cache
	heard := make(chan string, 16)
	w, err := st.Watch(t.Context(), func(n persist.Notice) { heard <- n.Topic })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(t.Context(), "stale/#"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	publish("stale/1")
	select {
	case got := <-heard:
		if got != "stale/1" {
			t.Errorf("heard %q, want stale/1", got)
		}
		t.Logf("notice of a publish with a stale cache after %v", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("a publisher with a stale cache did not notify the new watch")
	}
	if pub.note.version < 1 || pub.note.ix.Len() != 1 {
		t.Errorf("publisher cache: version %d, %d filters; want ≥ 1 and 1", pub.note.version, pub.note.ix.Len())
	}
}
