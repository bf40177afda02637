package persisttest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// other returns a second store on st's data (another broker node sharing
// the database) when the harness can make one, else st itself.
func (s *suite) other(t testing.TB, st persist.Store) persist.Store {
	t.Helper()
	if s.h.Shared == nil {
		return st
	}
	o := s.h.Shared(t, st)
	if o == nil {
		t.Fatal("Harness.Shared returned a nil store")
	}
	return o
}

// testSkipNothing pins the fanout contract that no message is skipped: a
// client acks messages one by one, in any order, and a message stored
// after the client acked one with a later ID — published on another node,
// committed late, replayed from an outbox, or stamped by a clock that is
// behind — is still delivered, and exactly once once acked.
func (s *suite) testSkipNothing(t *testing.T) {
	t.Run("EarlierIDStoredLater", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		st := s.store(t)
		c := s.uniq("c")
		now := time.Now()
		a := newMessageAt("sn/t", []byte("A, published first, stored last"), now.Add(-2*time.Second))
		b := newMessageAt("sn/t", []byte("B"), now)
		publish(t, st, b)
		sameIDs(t, "before A is stored", fetch(t, st, c, "sn/t", fan), msgs(b))
		ack(t, st, c, b)
		publish(t, st, a)
		sameIDs(t, "A, stored after the later B was acked", fetch(t, st, c, "sn/t", fan), msgs(a))
		ack(t, st, c, a)
		sameIDs(t, "after acking A too", fetch(t, st, c, "sn/t", fan), nil)
		sameIDs(t, "another client gets both", fetch(t, st, s.uniq("d"), "sn/t", fan), msgs(a, b))
	})
	t.Run("AcksInAnyOrder", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		st := s.store(t)
		m := series(persist.Fanout, "sn/any", 6)
		publish(t, st, m...)
		c := s.uniq("c")
		ack(t, st, c, m[4], m[1])
		ack(t, st, c, m[5])
		sameIDs(t, "after acking #4, #1 and #5", fetch(t, st, c, "sn/any", fan), msgs(m[0], m[2], m[3]))
		sameIDs(t, "with Limit 2", fetch(t, st, c, "sn/any", persist.Fetch{Mode: persist.Fanout, Limit: 2}), msgs(m[0], m[2]))
		ack(t, st, c, m[3], m[0])
		sameIDs(t, "after acking #3 and #0", fetch(t, st, c, "sn/any", fan), msgs(m[2]))
		ack(t, st, c, m[2], m[2], m[4])
		sameIDs(t, "after acking everything (some twice)", fetch(t, st, c, "sn/any", fan), nil)
		late := newMessageAt("sn/any", []byte("late, with the oldest ID"), time.Now().Add(-time.Hour))
		next := NewMessage("sn/any", []byte("next"))
		publish(t, st, late, next)
		sameIDs(t, "two more after everything was acked", fetch(t, st, c, "sn/any", fan), msgs(late, next))
	})
	t.Run("AcrossTopics", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		st := s.store(t)
		c := s.uniq("c")
		a2 := NewMessage("sn/x/a", []byte("a2"))
		b2 := NewMessage("sn/x/b", []byte("b2"))
		publish(t, st, a2, b2)
		ack(t, st, c, a2, b2)
		a1 := newMessageAt("sn/x/a", []byte("a1"), time.Now().Add(-3*time.Second))
		b1 := newMessageAt("sn/x/b", []byte("b1"), time.Now().Add(-2*time.Second))
		publish(t, st, b1, a1)
		sameIDs(t, "older messages of two topics stored after newer ones were acked", fetch(t, st, c, "sn/x/+", fan), msgs(a1, b1))
	})
	t.Run("SharedDatabase", func(t *testing.T) {
		// Two store values on one database, as two broker nodes: what
		// one stores, the other reads, and acks on either count.
		t.Parallel()
		s.needFanout(t)
		st := s.store(t)
		o := s.other(t, st)
		c := s.uniq("c")
		now := time.Now()
		onA := newMessageAt("sn/shared", []byte("on A"), now.Add(-time.Second))
		onB := newMessageAt("sn/shared", []byte("on B"), now)
		publish(t, o, onB)
		sameIDs(t, "node A reads what node B stored", fetch(t, st, c, "sn/shared", fan), msgs(onB))
		ack(t, st, c, onB)
		publish(t, st, onA)
		sameIDs(t, "node B, after the client acked B's message on A and A stored an older one", fetch(t, o, c, "sn/shared", fan), msgs(onA))
		ack(t, o, c, onA)
		sameIDs(t, "node A after the ack on B", fetch(t, st, c, "sn/shared", fan), nil)
	})
	t.Run("Racing", s.testRacing)
}

// testRacing has publishers on two store values (two nodes) publish to one
// topic with IDs stamped by clocks up to two seconds apart, while a
// consumer fetches and acks from both: the consumer gets every message,
// and none again once acked.
func (s *suite) testRacing(t *testing.T) {
	t.Parallel()
	s.needFanout(t)
	st := s.store(t)
	nodes := []persist.Store{st, s.other(t, st)}
	const publishers, each = 4, 60
	c := s.uniq("c")
	tp := s.uniq("sn/race")
	var mu sync.Mutex
	published := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range publishers {
		node := nodes[p%2]
		skew := time.Duration(p) * 500 * time.Millisecond // node clocks apart
		wg.Go(func() {
			for i := range each {
				m := newMessageAt(tp, fmt.Appendf(nil, "p%d #%d", p, i), time.Now().Add(-skew))
				if err := node.Publish(t.Context(), m); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				published[m.ID] = true
				mu.Unlock()
				if rand.IntN(4) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	go func() { wg.Wait(); close(stop) }()
	acked := map[string]bool{}
	read := func(node persist.Store) {
		got := fetch(t, node, c, tp, persist.Fetch{Mode: persist.Fanout, Limit: 25})
		for _, m := range got {
			if acked[m.ID] {
				t.Errorf("message %s returned again after it was acked", fmtMsg(m))
			}
		}
		// Ack in a shuffled order: acks need not follow ID order.
		rand.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		if len(got) > 0 {
			ack(t, node, c, got...)
		}
		for _, m := range got {
			acked[m.ID] = true
		}
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
		default:
			read(nodes[i%2])
			continue
		}
		break
	}
	if t.Failed() {
		return
	}
	// Everything is published: read until nothing is left.
	for range 1000 {
		before := len(acked)
		read(nodes[0])
		if len(acked) == before {
			break
		}
	}
	var missing []string
	for id := range published {
		if !acked[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 || len(acked) != len(published) {
		t.Errorf("consumer got %d of %d published messages; never got %d: %v", len(acked), len(published), len(missing), missing[:min(5, len(missing))])
	}
}
