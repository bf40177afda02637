package persisttest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// testWatch pins persist.Watcher on stores that implement it, with two
// store values on one database as two broker nodes (Harness.Shared; the
// one store value twice without it): a watch hears of the publishes to
// its filters on either node, with the publishing node (one when every
// message a notice tells of is that node's, also over several batches;
// none, or the other, when another node's is among them), and of every
// client's connect and disconnect whatever its filters (also of a
// disconnect that changes nothing); filters are
// counted, a shared filter is watched as its inner filter, an invalid one
// is refused; a closed watch hears nothing more, and the store's Close
// closes its watches.
func (s *suite) testWatch(t *testing.T) {
	if _, ok := s.store(t).(persist.Watcher); !ok {
		t.Skipf("store %s does not implement persist.Watcher", s.caps.typ)
	}
	nodes := func(t *testing.T) (a, b persist.Store) {
		t.Helper()
		st := s.store(t)
		return st, s.other(t, st)
	}
	watch := func(t *testing.T, st persist.Store, ns Notices) persist.Watch {
		t.Helper()
		w, err := st.(persist.Watcher).Watch(t.Context(), ns.Fn)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// watching is nodes, with a watch on a of filters and its notices.
	watching := func(t *testing.T, filters ...string) (a, b persist.Store, ns Notices, w persist.Watch) {
		t.Helper()
		a, b = nodes(t)
		ns = make(Notices, 1024)
		w = watch(t, a, ns)
		t.Cleanup(func() { w.Close() })
		if err := w.Add(t.Context(), filters...); err != nil {
			t.Fatal(err)
		}
		return a, b, ns, w
	}
	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		a, b, ns, w := watching(t, "sync/#", "cnt/t", "cnt/t", "$share/g/sh/+")
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
			_, skipped, ok := ns.Next(5*time.Second, TopicIs(name))
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
			t.Fatalf("Remove of a filter added twice, one never added and an invalid one: %v", err)
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
		x, _, ok := ns.Next(5*time.Second, TopicIs("sync/own"))
		if !ok || x.Node != "nodeA" {
			t.Errorf("notice of A's own publish = %+v, %v; want node nodeA", x, ok)
		}
	})
	t.Run("Nodes", func(t *testing.T) {
		t.Parallel()
		a, b, ns, _ := watching(t, "nodes/#")
		// heard collects the notices of name until none came for a while.
		heard := func(name string) []persist.Notice {
			t.Helper()
			var got []persist.Notice
			for wait := 5 * time.Second; ; wait = 500 * time.Millisecond {
				x, _, ok := ns.Next(wait, TopicIs(name))
				if !ok {
					return got
				}
				got = append(got, x)
			}
		}
		// Several batches of A's in quick succession, some of them
		// between the same two polls of a polling watch: every notice
		// names A, which delivered them itself.
		for range 20 {
			publishOn(t, a, "nodes/own", "nodeA")
		}
		got := heard("nodes/own")
		if len(got) == 0 {
			t.Fatal("no notice of nodes/own")
		}
		for _, x := range got {
			if x.Node != "nodeA" {
				t.Errorf("a notice of nodes/own, which only node A published to, names node %q, want nodeA (notices %+v)", x.Node, got)
				break
			}
		}
		// B's message among A's: A must hear of it by a notice that does
		// not name A alone (one naming B, or no node).
		publishOn(t, a, "nodes/mixed", "nodeA")
		publishOn(t, b, "nodes/mixed", "nodeB")
		publishOn(t, a, "nodes/mixed", "nodeA")
		got = heard("nodes/mixed")
		told := false
		for _, x := range got {
			told = told || x.Node != "nodeA"
		}
		if !told {
			t.Errorf("node B's message among node A's on nodes/mixed was told only by notices naming node A: %+v", got)
		}
	})
	t.Run("Clients", func(t *testing.T) {
		t.Parallel()
		s.need(t, persist.OnConnected)
		a, b := nodes(t)
		ctx := t.Context()
		ns1, ns2 := make(Notices, 64), make(Notices, 64)
		w1 := watch(t, a, ns1)
		defer w1.Close()
		w2 := watch(t, b, ns2) // no filters
		defer w2.Close()
		if err := w1.Add(ctx, "x/#"); err != nil {
			t.Fatal(err)
		}
		c1, c2 := s.uniq("cl"), s.uniq("cl")
		at := time.Now().Add(-time.Second).Truncate(time.Millisecond)
		if err := b.Connected(ctx, &persist.Client{ID: c1, Node: "nodeB", Online: true, OnlineAt: at}); err != nil {
			t.Fatal(err)
		}
		isClient := func(id string) func(persist.Notice) bool {
			return func(x persist.Notice) bool { return x.Client == id }
		}
		for i, ns := range []Notices{ns1, ns2} {
			x, _, ok := ns.Next(5*time.Second, isClient(c1))
			if !ok || x.Node != "nodeB" || !x.At.Equal(at) || x.Topic != "" || x.Offline {
				t.Errorf("watch %d: client notice %+v (heard %v), want %s online on nodeB at %v", i+1, x, ok, c1, at)
			}
		}
		// A disconnect is told too (Offline): that node has recorded the
		// client's acks. Also one that changes nothing, from a node the
		// client has left (the node it moved to waits for that).
		offlineOn := func(node string) func(persist.Notice) bool {
			return func(x persist.Notice) bool { return x.Client == c1 && x.Offline && x.Node == node }
		}
		for _, node := range []string{"nodeC", "nodeB"} {
			if err := b.Connected(ctx, &persist.Client{ID: c1, Node: node, OfflineAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			for i, ns := range []Notices{ns1, ns2} {
				if x, _, ok := ns.Next(5*time.Second, offlineOn(node)); !ok || x.Topic != "" {
					t.Errorf("watch %d: no client notice of %s's disconnect from %s (%+v)", i+1, c1, node, x)
				}
			}
		}
		if st, ok := b.(persist.ClientLookup); ok {
			if got, err := st.Client(ctx, c1); err != nil || got.Online {
				t.Errorf("Client(%s) after its disconnect from nodeB = %+v, %v; want offline", c1, got, err)
			}
		}
		if err := a.Connected(ctx, &persist.Client{ID: c2, Node: "nodeA", Online: true, OnlineAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		x, skipped, ok := ns2.Next(5*time.Second, isClient(c2))
		if !ok || x.Node != "nodeA" || x.Offline {
			t.Errorf("client notice of %s = %+v, %v; want online on nodeA", c2, x, ok)
		}
		for _, n := range skipped {
			if n.Client == c1 {
				t.Errorf("heard %+v again after %s's disconnect", n, c1)
			}
		}
	})
	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		a, b := nodes(t)
		ctx := t.Context()
		ns := make(Notices, 64)
		w := watch(t, a, ns)
		if err := w.Add(ctx, "c/#"); err != nil {
			t.Fatal(err)
		}
		publishOn(t, b, "c/1", "nodeB")
		if _, _, ok := ns.Next(5*time.Second, TopicIs("c/1")); !ok {
			t.Fatal("no notice before Close")
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		publishOn(t, b, "c/2", "nodeB")
		if x, _, ok := ns.Next(300*time.Millisecond, func(persist.Notice) bool { return true }); ok {
			t.Errorf("heard %+v after Close", x)
		}
		if err := w.Add(ctx, "d/#"); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("Add after Close: %v, want ErrClosed", err)
		}
		w2 := watch(t, a, ns)
		cl, ok := a.(persist.Closer)
		if !ok {
			return
		}
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w2.Add(ctx, "e/#"); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("Add on a watch of a closed store: %v, want ErrClosed", err)
		}
		if _, err := a.(persist.Watcher).Watch(ctx, ns.Fn); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("Watch on a closed store: %v, want ErrClosed", err)
		}
	})
}

// Notices collects a watch's notices: make one with room, pass its Fn to
// persist.Watcher.Watch, and read them with Next.
type Notices chan persist.Notice

// Fn is the watch's fn: it queues the notice.
func (n Notices) Fn(x persist.Notice) { n <- x }

// Next waits up to d for a notice that ok accepts and returns it; the
// notices it passes over are returned too.
func (n Notices) Next(d time.Duration, ok func(persist.Notice) bool) (persist.Notice, []persist.Notice, bool) {
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

// TopicIs accepts the notices of topic name.
func TopicIs(name string) func(persist.Notice) bool {
	return func(x persist.Notice) bool { return x.Topic == name }
}

// publishOn publishes one QoS 1 fanout message to name as node.
func publishOn(t *testing.T, st persist.Store, name, node string) {
	t.Helper()
	m := NewMessage(name, []byte("x"))
	m.Node = node
	if err := st.Publish(t.Context(), m); err != nil {
		t.Fatalf("Publish(%s): %v", name, err)
	}
}
