package persisttest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

var que = persist.Fetch{Mode: persist.Queue}

func (s *suite) testQueue(t *testing.T) {
	t.Run("WaitsForConsumer", func(t *testing.T) {
		t.Parallel()
		s.needQueue(t)
		st := s.store(t)
		m := series(persist.Queue, "q/wait", 2)
		publish(t, st, m...)
		gap()
		// A subscription made after the messages does not hide them: a
		// queue has no subscription start.
		c := s.uniq("consumer")
		if s.has(persist.OnSubscribed) {
			subscribe(t, st, c, []persist.Subscription{{Filter: "q/wait", QoS: 1}}, nil)
		}
		sameIDs(t, "the first consumer after publish", fetch(t, st, c, "q/wait", que), m)
	})
	t.Run("ClaimedOnce", func(t *testing.T) {
		t.Parallel()
		s.needQueue(t)
		st := s.store(t)
		m := series(persist.Queue, "q/once", 3)
		publish(t, st, m...)
		c1, c2 := s.uniq("c1"), s.uniq("c2")
		sameIDs(t, "c1 claims", fetch(t, st, c1, "q/once", que), m)
		sameIDs(t, "c2 while c1 holds the claims", fetch(t, st, c2, "q/#", que), nil)
		ack(t, st, c1, m...)
		sameIDs(t, "c2 after c1 acked", fetch(t, st, c2, "q/once", que), nil)
	})
	t.Run("OwnClaimsAgain", func(t *testing.T) {
		// A consumer that fetches again (it reconnected, here or on
		// another node) gets the messages it claimed and did not ack at
		// once, not when its lease runs out; nobody else gets them.
		t.Parallel()
		s.needQueue(t)
		st := s.store(t)
		m := series(persist.Queue, "q/own", 3)
		publish(t, st, m...)
		a, b := s.uniq("a"), s.uniq("b")
		sameIDs(t, "a claims", fetch(t, st, a, "q/own", que), m)
		sameIDs(t, "b while a holds the claims", fetch(t, st, b, "q/own", que), nil)
		// Client IDs compare byte for byte: these are other clients.
		sameIDs(t, "a's ID in upper case", fetch(t, st, strings.ToUpper(a), "q/own", que), nil)
		sameIDs(t, "a's ID with a trailing space", fetch(t, st, a+" ", "q/own", que), nil)
		sameIDs(t, "a again (its own claims, each once)", fetch(t, st, a, "q/own", que), m)
		sameIDs(t, "a again with a wildcard filter", fetch(t, st, a, "q/+", que), m)
		sameIDs(t, "b after a fetched again", fetch(t, st, b, "q/#", que), nil)
		// A new message after a's claims: a gets it with its claims, in
		// ID order.
		m4 := NewMessage("q/own", []byte("fourth"))
		m4.Mode = persist.Queue
		publish(t, st, m4)
		sameIDs(t, "a with Limit 2 (its own claims count)", fetch(t, st, a, "q/own", persist.Fetch{Mode: persist.Queue, Limit: 2}), m[:2])
		sameIDs(t, "b takes what a was not given", fetch(t, st, b, "q/own", que), msgs(m4))
		sameIDs(t, "a after b claimed the new one", fetch(t, st, a, "q/own", que), m)
		ack(t, st, a, m[0])
		sameIDs(t, "a after acking the first", fetch(t, st, a, "q/own", que), m[1:])
		sameIDs(t, "b after a acked the first", fetch(t, st, b, "q/own", que), msgs(m4))
		ack(t, st, a, m[1:]...)
		ack(t, st, b, m4)
		sameIDs(t, "a after it acked all", fetch(t, st, a, "q/own", que), nil)
		sameIDs(t, "b after every ack", fetch(t, st, b, "q/#", que), nil)
		sameIDs(t, "a newcomer after every ack", fetch(t, st, s.uniq("c"), "q/#", que), nil)
	})
	t.Run("OwnClaimRenewsLease", func(t *testing.T) {
		// Fetching its own claim again renews the lease: the message is
		// not handed to another consumer when the first lease would have
		// run out.
		t.Parallel()
		s.needQueue(t)
		st := s.store(t)
		m := series(persist.Queue, "q/renew", 2)
		publish(t, st, m...)
		a, b := s.uniq("a"), s.uniq("b")
		short := persist.Fetch{Mode: persist.Queue, Lease: 3 * time.Second}
		claimed := time.Now()
		sameIDs(t, "a claims with a 3s lease", fetch(t, st, a, "q/renew", short), m)
		sleepUntil(claimed.Add(time.Second))
		sameIDs(t, "a again, one message, with a 1m lease", fetch(t, st, a, "q/renew", persist.Fetch{Mode: persist.Queue, Lease: time.Minute, Limit: 1}), m[:1])
		// Past the first lease (and a second more: stores may keep whole
		// seconds).
		sleepUntil(claimed.Add(short.Lease + 1200*time.Millisecond))
		sameIDs(t, "b after a's first lease ran out (only the message a did not fetch again)", fetch(t, st, b, "q/renew", que), m[1:])
		sameIDs(t, "a (its renewed claim, and no longer the one b holds)", fetch(t, st, a, "q/renew", que), m[:1])
	})
	t.Run("LimitClaims", func(t *testing.T) {
		t.Parallel()
		s.needQueue(t)
		st := s.store(t)
		m := series(persist.Queue, "q/lim", 5)
		publish(t, st, m...)
		sameIDs(t, "c1 with Limit 2", fetch(t, st, s.uniq("c1"), "q/lim", persist.Fetch{Mode: persist.Queue, Limit: 2}), m[:2])
		sameIDs(t, "c2 without a limit (what c1 was not given is not claimed)", fetch(t, st, s.uniq("c2"), "q/lim", que), m[2:])
		sameIDs(t, "c3", fetch(t, st, s.uniq("c3"), "q/lim", que), nil)
	})
	t.Run("ModesApart", func(t *testing.T) {
		t.Parallel()
		s.needQueue(t)
		s.needFanout(t)
		st := s.store(t)
		f := NewMessage("mix/t", []byte("fanout"))
		q := NewMessage("mix/t", []byte("queue"))
		q.Mode = persist.Queue
		publish(t, st, f, q)
		c1, c2 := s.uniq("c1"), s.uniq("c2")
		sameIDs(t, "fanout fetch", fetch(t, st, c1, "mix/t", fan), msgs(f))
		sameIDs(t, "queue fetch", fetch(t, st, c2, "mix/#", que), msgs(q))
		// c2 acks its queue message, whose ID is after f's: that deletes
		// it and moves no fanout cursor of c2.
		ack(t, st, c2, q)
		sameIDs(t, "c2's fanout fetch after acking a queue message", fetch(t, st, c2, "mix/t", fan), msgs(f))
		sameIDs(t, "queue fetch after the ack", fetch(t, st, s.uniq("c3"), "mix/t", que), nil)
		sameIDs(t, "fanout fetch of c1 again", fetch(t, st, c1, "mix/t", fan), msgs(f))
	})
	t.Run("Lease", func(t *testing.T) {
		t.Parallel()
		s.needQueue(t)
		st := s.store(t)
		m := series(persist.Queue, "q/lease", 3)
		publish(t, st, m...)
		c1, c2, c3 := s.uniq("c1"), s.uniq("c2"), s.uniq("c3")
		lease := persist.Fetch{Mode: persist.Queue, Lease: 2 * time.Second}
		// withinLease checks a fetch that must find the claims made at
		// since still held, when it returned within the lease (a machine
		// that stalls past it tells nothing of the lease).
		withinLease := func(since time.Time, what string, got []*persist.Message, want []*persist.Message) {
			t.Helper()
			if time.Since(since) >= lease.Lease {
				t.Logf("%s: returned %v after the claims, past the lease: not checked", what, time.Since(since).Round(time.Millisecond))
				return
			}
			sameIDs(t, what, got, want)
		}
		claimed := time.Now()
		sameIDs(t, "c1 claims with a 2s lease", fetch(t, st, c1, "q/lease", lease), m)
		ack(t, st, c1, m[0])
		// An ack by a client that holds no claim deletes nothing.
		ack(t, st, c2, m[1])
		withinLease(claimed, "c2 within the lease", fetch(t, st, c2, "q/lease", lease), nil)
		// Past the lease (and a second more: stores may keep whole
		// seconds), the unacked messages are handed out again; the acked
		// one is gone.
		sleepUntil(claimed.Add(lease.Lease + 1200*time.Millisecond))
		reclaimed := time.Now()
		sameIDs(t, "c2 after c1's lease ran out", fetch(t, st, c2, "q/lease", persist.Fetch{Mode: persist.Queue}), m[1:])
		withinLease(reclaimed, "c3 while c2 holds the new claims", fetch(t, st, c3, "q/lease", lease), nil)
		// c1 lost its claims to c2: it no longer gets them, nor can it
		// ack them.
		withinLease(reclaimed, "c1 after c2 took over its claims", fetch(t, st, c1, "q/lease", lease), nil)
		ack(t, st, c1, m[1:]...)
		sameIDs(t, "c2 after c1 acked what c2 holds", fetch(t, st, c2, "q/lease", lease), m[1:])
		ack(t, st, c2, m[1:]...)
		sameIDs(t, "c3 after c2 acked", fetch(t, st, c3, "q/lease", lease), nil)
	})
	t.Run("ExactlyOnce", func(t *testing.T) {
		t.Parallel()
		s.needQueue(t)
		st := s.store(t)
		const n, consumers, limit = 200, 8, 10
		m := series(persist.Queue, "q/load/t", n)
		publish(t, st, m...)
		var mu sync.Mutex
		got := map[string][]string{} // ID → consumers
		var wg sync.WaitGroup
		for i := range consumers {
			wg.Go(func() {
				id := fmt.Sprintf("consumer-%d", i)
				// Half the consumers use a wildcard filter: claims are
				// atomic whatever the query.
				filter := "q/load/t"
				if i%2 == 1 {
					filter = "q/+/t"
				}
				for range n {
					batch, err := st.FetchOffline(t.Context(), id, filter, persist.Fetch{Mode: persist.Queue, Limit: limit})
					if err != nil {
						t.Errorf("%s: FetchOffline: %v", id, err)
						return
					}
					if len(batch) > limit {
						t.Errorf("%s: FetchOffline with Limit %d returned %d messages", id, limit, len(batch))
					}
					if len(batch) == 0 {
						return
					}
					mu.Lock()
					for _, msg := range batch {
						got[msg.ID] = append(got[msg.ID], id)
					}
					mu.Unlock()
					// Deliver before acking, as a broker does: others
					// fetch meanwhile.
					time.Sleep(time.Millisecond)
					acks := make([]persist.Ack, len(batch))
					for j, msg := range batch {
						acks[j] = persist.Ack{ID: msg.ID, Topic: msg.Topic}
					}
					if err := st.Acked(t.Context(), id, acks...); err != nil {
						t.Errorf("%s: Acked: %v", id, err)
						return
					}
				}
			})
		}
		wg.Wait()
		missing := 0
		for _, msg := range m {
			switch by := got[msg.ID]; len(by) {
			case 1:
			case 0:
				missing++
			default:
				t.Errorf("message %s was handed to %d consumers: %v", msg.ID, len(by), by)
			}
		}
		if missing > 0 || len(got) != n {
			t.Errorf("%d of %d messages were handed out (%d never, %d unknown IDs)", len(got), n, missing, len(got)+missing-n)
		}
		sameIDs(t, "after every consumer acked", fetch(t, st, "late", "q/#", que), nil)
	})
}
