package persisttest

import (
	"slices"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

var fan = persist.Fetch{Mode: persist.Fanout}

func (s *suite) testFanout(t *testing.T) {
	t.Run("Cursors", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		st := s.store(t)
		m := series(persist.Fanout, "fan/t", 5)
		publish(t, st, m...)
		c1, c2 := s.uniq("c1"), s.uniq("c2")
		sameIDs(t, "c1 first fetch", fetch(t, st, c1, "fan/t", fan), m)
		sameIDs(t, "c2 first fetch", fetch(t, st, c2, "fan/t", fan), m)
		sameIDs(t, "c1 fetching again without an ack (a fetch moves nothing)", fetch(t, st, c1, "fan/t", fan), m)

		// Acks are per message: acking #1 acks #1 alone.
		ack(t, st, c1, m[1])
		sameIDs(t, "c1 after acking #1", fetch(t, st, c1, "fan/t", fan), msgs(m[0], m[2], m[3], m[4]))
		sameIDs(t, "c2 after c1 acked #1", fetch(t, st, c2, "fan/t", fan), m)

		ack(t, st, c1, m[3])
		ack(t, st, c1, m[0])
		sameIDs(t, "c1 after acking #3 and then the older #0", fetch(t, st, c1, "fan/t", fan), msgs(m[2], m[4]))
		ack(t, st, c1, m[2], m[0])
		sameIDs(t, "c1 after acking #2 and #0 again in one call", fetch(t, st, c1, "fan/t", fan), m[4:])

		ack(t, st, c2, m[4], m[2])
		sameIDs(t, "c2 after acking #4 and #2 in one call", fetch(t, st, c2, "fan/t", fan), msgs(m[0], m[1], m[3]))
		ack(t, st, c2, m[0], m[1], m[3])
		sameIDs(t, "c2 after acking the rest", fetch(t, st, c2, "fan/t", fan), nil)
		sameIDs(t, "c1 after c2 acked everything", fetch(t, st, c1, "fan/t", fan), m[4:])
		sameIDs(t, "a new client after every ack (messages leave by expiry only)", fetch(t, st, s.uniq("c3"), "fan/t", fan), m)
	})
	t.Run("CursorPerTopic", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		st := s.store(t)
		a1 := NewMessage("fan/a", []byte("a1"))
		b1 := NewMessage("fan/b", []byte("b1"))
		a2 := NewMessage("fan/a", []byte("a2"))
		b2 := NewMessage("fan/b", []byte("b2"))
		publish(t, st, a1, b1, a2, b2)
		c := s.uniq("c")
		sameIDs(t, "fan/# before any ack", fetch(t, st, c, "fan/#", fan), msgs(a1, b1, a2, b2))
		ack(t, st, c, a2)
		sameIDs(t, "fan/# after acking a2 (fan/b keeps all)", fetch(t, st, c, "fan/#", fan), msgs(a1, b1, b2))
		sameIDs(t, "fan/b after acking a2", fetch(t, st, c, "fan/b", fan), msgs(b1, b2))
		sameIDs(t, "fan/a after acking a2", fetch(t, st, c, "fan/a", fan), msgs(a1))
		ack(t, st, c, b1, a1)
		sameIDs(t, "fan/+ after acking b1 and a1", fetch(t, st, c, "fan/+", fan), msgs(b2))
	})
	t.Run("AckBeforePublish", func(t *testing.T) {
		// An ack names its message's ID and topic, so it is recorded even
		// when the message is not (yet) stored: an asynchronous pipeline
		// may write the ack first.
		t.Parallel()
		s.needFanout(t)
		st := s.store(t)
		m := series(persist.Fanout, "early/t", 3)
		c := s.uniq("c")
		ack(t, st, c, m[1])
		publish(t, st, m...)
		sameIDs(t, "after an ack that came before its message", fetch(t, st, c, "early/t", fan), msgs(m[0], m[2]))
		sameIDs(t, "another client", fetch(t, st, s.uniq("other"), "early/t", fan), m)
	})
	t.Run("SubscriptionStart", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		s.need(t, persist.OnSubscribed)
		st := s.store(t)
		old := NewMessage("start/t", []byte("before"))
		publish(t, st, old)
		gap()
		now, hist, none := s.uniq("now"), s.uniq("history"), s.uniq("none")
		subscribe(t, st, now, []persist.Subscription{{Filter: "start/t", QoS: 1}}, nil)
		subscribe(t, st, hist, []persist.Subscription{{Filter: "start/t", QoS: 1, History: true}}, nil)
		gap()
		m1 := NewMessage("start/t", []byte("after"))
		publish(t, st, m1)
		sameIDs(t, "a new subscription starts now", fetch(t, st, now, "start/t", fan), msgs(m1))
		sameIDs(t, "a new subscription with History sees older messages", fetch(t, st, hist, "start/t", fan), msgs(old, m1))
		sameIDs(t, "a client with no stored subscription has no start bound", fetch(t, st, none, "start/t", fan), msgs(old, m1))

		// Subscribing again to the same filter keeps the start, even
		// with History.
		gap()
		subscribe(t, st, now, []persist.Subscription{{Filter: "start/t", QoS: 2, History: true}}, nil)
		gap()
		m2 := NewMessage("start/t", []byte("after resubscribe"))
		publish(t, st, m2)
		sameIDs(t, "after subscribing again (the start stays)", fetch(t, st, now, "start/t", fan), msgs(m1, m2))

		// Removing the subscription forgets its start; subscribing
		// again starts anew.
		subscribe(t, st, now, nil, []string{"start/t"})
		gap()
		subscribe(t, st, now, []persist.Subscription{{Filter: "start/t", QoS: 1}}, nil)
		gap()
		m3 := NewMessage("start/t", []byte("after re-adding"))
		publish(t, st, m3)
		sameIDs(t, "after removing and re-adding the subscription", fetch(t, st, now, "start/t", fan), msgs(m3))
		sameIDs(t, "the History subscriber after all that", fetch(t, st, hist, "start/t", fan), msgs(old, m1, m2, m3))
	})
	t.Run("SubscriptionStartWildcard", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		s.need(t, persist.OnSubscribed)
		st := s.store(t)
		old := NewMessage("sw/a/v", []byte("before"))
		publish(t, st, old)
		gap()
		c, h := s.uniq("c"), s.uniq("h")
		subscribe(t, st, c, []persist.Subscription{{Filter: "sw/+/v", QoS: 1}}, nil)
		subscribe(t, st, h, []persist.Subscription{{Filter: "sw/#", QoS: 1, History: true}}, nil)
		gap()
		m1 := NewMessage("sw/b/v", []byte("after"))
		publish(t, st, m1)
		sameIDs(t, "a new wildcard subscription starts now", fetch(t, st, c, "sw/+/v", fan), msgs(m1))
		sameIDs(t, "a new wildcard subscription with History", fetch(t, st, h, "sw/#", fan), msgs(old, m1))
	})
	t.Run("PastKeptForHistory", func(t *testing.T) {
		// The messages before a subscription's start were due to none of
		// the client's subscriptions: they do not hold its cursor back,
		// but a fetch with an earlier start (no stored subscription, or one
		// with History) still returns those the client did not ack —
		// including one acked live (delivered while it subscribed) and one
		// with an older ID stored after the subscription, acked out of
		// order.
		t.Parallel()
		s.needFanout(t)
		s.need(t, persist.OnSubscribed)
		st := s.store(t)
		past := series(persist.Fanout, "pk/t", 30)
		publish(t, st, past...)
		late := NewMessage("pk/t", []byte("older ID, stored after the subscription"))
		gap()
		c := s.uniq("c")
		subscribe(t, st, c, []persist.Subscription{{Filter: "pk/t", QoS: 1}}, nil)
		gap()
		m := series(persist.Fanout, "pk/t", 3)
		publish(t, st, m...)
		publish(t, st, late)
		ack(t, st, c, m[1])
		ack(t, st, c, past[7], late)
		ack(t, st, c, m[0], m[2])
		sameIDs(t, "the subscription's own fetch after acking everything after its start", fetch(t, st, c, "pk/t", fan), nil)
		want := slices.Concat(past[:7], past[8:])
		sameIDs(t, "a wildcard filter without a subscription: the past not acked", fetch(t, st, c, "pk/+", fan), want)
		subscribe(t, st, c, nil, []string{"pk/t"})
		sameIDs(t, "the topic without a subscription: the past not acked", fetch(t, st, c, "pk/t", fan), want)
		subscribe(t, st, c, []persist.Subscription{{Filter: "pk/#", QoS: 1, History: true}}, nil)
		sameIDs(t, "a subscription with History afterwards", fetch(t, st, c, "pk/#", fan), want)
		ack(t, st, c, past[0], past[29])
		sameIDs(t, "after acking two of the past", fetch(t, st, c, "pk/#", fan), want[1:len(want)-1])
		sameIDs(t, "another client", fetch(t, st, s.uniq("other"), "pk/t", fan), slices.Concat(past, msgs(late), m))
	})
	t.Run("PastKeptAcrossStarts", func(t *testing.T) {
		// As PastKeptForHistory, over two subscriptions to the same topic
		// one after the other (two starts): what came before each and
		// what came between them stays for a fetch with an earlier start.
		t.Parallel()
		s.needFanout(t)
		s.need(t, persist.OnSubscribed)
		st := s.store(t)
		c := s.uniq("c")
		p1 := series(persist.Fanout, "pa/t", 3)
		publish(t, st, p1...)
		gap()
		subscribe(t, st, c, []persist.Subscription{{Filter: "pa/t", QoS: 1}}, nil)
		gap()
		m1 := series(persist.Fanout, "pa/t", 2)
		publish(t, st, m1...)
		ack(t, st, c, m1...)
		subscribe(t, st, c, nil, []string{"pa/t"})
		p2 := series(persist.Fanout, "pa/t", 3)
		publish(t, st, p2...)
		gap()
		subscribe(t, st, c, []persist.Subscription{{Filter: "pa/t", QoS: 1}}, nil)
		gap()
		m2 := series(persist.Fanout, "pa/t", 2)
		publish(t, st, m2...)
		ack(t, st, c, m2...)
		sameIDs(t, "the second subscription's fetch", fetch(t, st, c, "pa/t", fan), nil)
		ack(t, st, c, p1[1], p2[1])
		sameIDs(t, "a filter without a subscription: the past of both not acked", fetch(t, st, c, "pa/+", fan),
			msgs(p1[0], p1[2], p2[0], p2[2]))
	})
	t.Run("StartAndCursor", func(t *testing.T) {
		t.Parallel()
		s.needFanout(t)
		s.need(t, persist.OnSubscribed)
		st := s.store(t)
		c := s.uniq("c")
		subscribe(t, st, c, []persist.Subscription{{Filter: "sc/t", QoS: 1}}, nil)
		gap()
		m := series(persist.Fanout, "sc/t", 3)
		publish(t, st, m...)
		ack(t, st, c, m[0])
		sameIDs(t, "after the start and the cursor", fetch(t, st, c, "sc/t", fan), m[1:])
	})
}
