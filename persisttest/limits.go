package persisttest

import (
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

func (s *suite) testLimits(t *testing.T) {
	t.Run("Limit", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			m := series(mode, "lim/t", 7)
			publish(t, st, m...)
			c := s.uniq("c")
			lim := persist.Fetch{Mode: mode, Limit: 3}
			got := fetch(t, st, c, "lim/t", lim)
			sameIDs(t, "first fetch with Limit 3", got, m[:3])
			ack(t, st, c, got...)
			got = fetch(t, st, c, "lim/t", lim)
			sameIDs(t, "second fetch with Limit 3 after acking the first three", got, m[3:6])
			ack(t, st, c, got...)
			got = fetch(t, st, c, "lim/t", lim)
			sameIDs(t, "third fetch with Limit 3", got, m[6:])
			ack(t, st, c, got...)
			sameIDs(t, "fourth fetch with Limit 3", fetch(t, st, c, "lim/t", lim), nil)
		})
	})
	t.Run("LimitAcrossTopics", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			var m []*persist.Message
			for i := range 6 {
				topic := "lim/b"
				if i%2 == 0 {
					topic = "lim/a"
				}
				m = append(m, NewMessage(topic, []byte{byte(i)}))
			}
			withMode(mode, m...)
			// Publish the later half first: fetch order is ID order, not
			// insertion order.
			publish(t, st, m[3:]...)
			publish(t, st, m[:3]...)
			got := fetch(t, st, s.uniq("c"), "lim/+", persist.Fetch{Mode: mode, Limit: 4})
			sameIDs(t, "lim/+ with Limit 4: the first four in ID order across topics", got, m[:4])
		})
	})
	t.Run("Since", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			now := time.Now()
			p1 := newMessageAt("since/t", []byte("2h ago"), now.Add(-2*time.Hour))
			p2 := newMessageAt("since/t", []byte("90m ago"), now.Add(-90*time.Minute))
			p3 := newMessageAt("since/t", []byte("30m ago"), now.Add(-30*time.Minute))
			r := NewMessage("since/t", []byte("now"))
			all := withMode(mode, p1, p2, p3, r)
			publish(t, st, all...)
			if mode == persist.Queue {
				// Claims are taken, so each message can be fetched by one
				// client only.
				sameIDs(t, "Since 10m", fetch(t, st, "c1", "since/t", persist.Fetch{Mode: mode, Since: 10 * time.Minute}), msgs(r))
				sameIDs(t, "Since 1h", fetch(t, st, "c2", "since/t", persist.Fetch{Mode: mode, Since: time.Hour}), msgs(p3))
				sameIDs(t, "Since 0 (no time limit)", fetch(t, st, "c3", "since/t", persist.Fetch{Mode: mode}), msgs(p1, p2))
				return
			}
			sameIDs(t, "Since 10m", fetch(t, st, "c1", "since/t", persist.Fetch{Mode: mode, Since: 10 * time.Minute}), msgs(r))
			sameIDs(t, "Since 1h", fetch(t, st, "c1", "since/t", persist.Fetch{Mode: mode, Since: time.Hour}), msgs(p3, r))
			sameIDs(t, "Since 100m with Limit 1", fetch(t, st, "c1", "since/t", persist.Fetch{Mode: mode, Since: 100 * time.Minute, Limit: 1}), msgs(p2))
			sameIDs(t, "Since 0 (no time limit)", fetch(t, st, "c1", "since/t", persist.Fetch{Mode: mode}), all)
			sameIDs(t, "Since 3h", fetch(t, st, "c1", "#", persist.Fetch{Mode: mode, Since: 3 * time.Hour}), all)
		})
	})
}

// testExpiry checks that messages that expire after they were stored are
// not returned once expired, while later ones are. It waits about 2.5s
// once for all modes and retained messages.
func (s *suite) testExpiry(t *testing.T) {
	st := s.store(t)
	start := time.Now()
	soon := start.Add(1500 * time.Millisecond)
	later := start.Add(time.Hour)
	type set struct{ soon, later, never *persist.Message }
	mk := func(mode persist.Mode, prefix string) set {
		x := set{NewMessage(prefix+"/soon", []byte("soon")), NewMessage(prefix+"/later", []byte("later")), NewMessage(prefix+"/never", []byte("never"))}
		x.soon.Expiry, x.later.Expiry = soon, later
		withMode(mode, x.soon, x.later, x.never)
		return x
	}
	var fanSet, queueSet, retSet set
	if !s.h.Features.NoFanout {
		fanSet = mk(persist.Fanout, "exp/fan")
		publish(t, st, fanSet.soon, fanSet.later, fanSet.never)
		sameIDs(t, "fanout before expiry (a message expiring later is returned now)",
			fetch(t, st, "c", "exp/fan/+", fan), msgs(fanSet.soon, fanSet.later, fanSet.never))
	}
	if !s.h.Features.NoQueue {
		queueSet = mk(persist.Queue, "exp/queue")
		publish(t, st, queueSet.soon, queueSet.later, queueSet.never)
	}
	rl, hasRetain := s.hasRetainLookup(st)
	if hasRetain {
		retSet = mk(persist.Fanout, "exp/ret")
		for _, m := range []*persist.Message{retSet.soon, retSet.later, retSet.never} {
			m.Retain = true
			retain(t, st, m)
		}
		sameIDs(t, "retained before expiry", retained(t, rl, "exp/ret/+"), msgs(retSet.later, retSet.never, retSet.soon))
	}
	// Wait a second past the expiry: stores may keep whole seconds.
	sleepUntil(soon.Add(time.Second))
	t.Run("Fanout", func(t *testing.T) {
		s.needFanout(t)
		sameIDs(t, "fanout after expiry", fetch(t, st, "c", "exp/fan/+", fan), msgs(fanSet.later, fanSet.never))
		sameIDs(t, "fanout after expiry, exact topic", fetch(t, st, "c", "exp/fan/soon", fan), nil)
	})
	t.Run("Queue", func(t *testing.T) {
		s.needQueue(t)
		sameIDs(t, "queue after expiry", fetch(t, st, "c", "exp/queue/+", persist.Fetch{Mode: persist.Queue}), msgs(queueSet.later, queueSet.never))
	})
	t.Run("Retained", func(t *testing.T) {
		s.retainLookup(t, st)
		sameIDs(t, "retained after expiry", retained(t, rl, "exp/ret/+"), msgs(retSet.later, retSet.never))
		sameIDs(t, "retained after expiry, exact topic", retained(t, rl, "exp/ret/soon"), nil)
	})
}
