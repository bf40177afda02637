package mochi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// slowRouter is the real Router over the real store, each call delayed as
// by a busy database.
type slowRouter struct {
	*persist.Router
	publish, fetch, acked time.Duration
}

func (s *slowRouter) Publish(ctx context.Context, msgs ...*persist.Message) error {
	time.Sleep(s.publish)
	return s.Router.Publish(ctx, msgs...)
}

func (s *slowRouter) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	time.Sleep(s.fetch)
	return s.Router.FetchOffline(ctx, clientID, filter, opt)
}

func (s *slowRouter) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	time.Sleep(s.acked)
	return s.Router.Acked(ctx, clientID, acks...)
}

// slowWrites is a mochi hook that pauses before each PUBLISH written to one
// client, as a loaded machine pauses the delivery goroutine: the client's
// acks of the messages just written come back while the delivery is still
// sending. The PUBLISH of payload hold (if any) waits instead until open
// is closed; held is closed when it waits.
type slowWrites struct {
	mqtt.HookBase
	client     string
	pause      time.Duration
	hold       string
	held, open chan struct{}
}

func (h *slowWrites) ID() string            { return "slow-writes" }
func (h *slowWrites) Provides(b byte) bool  { return b == mqtt.OnPacketEncode }
func (h *slowWrites) Init(config any) error { return nil }
func (h *slowWrites) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.ID != h.client || pk.FixedHeader.Type != packets.Publish {
		return pk
	}
	if h.hold != "" && string(pk.Payload) == h.hold {
		close(h.held)
		<-h.open
	} else {
		time.Sleep(h.pause)
	}
	return pk
}

// Messages spilled while the delivery is sending from memory come from the
// store before the live messages that followed them: the delivery sends
// m0 live and is held in the write; meanwhile m1…m7 overflow the memory
// (Buffer 4: the older half is spilled each time it is full) and the newer
// ones wait in memory. The delivery must read the store (m1…m7) before it
// sends what memory holds: sent first, a newer message came out of order,
// and its ack, recorded before the fetch, moved the topic's cursor past the
// spilled ones, which were then never delivered (not even on a reconnect).
func TestSpillDuringSendIsFetchedFirst(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		if d.name == "mysql" {
			t.Skip("SQLite and PostgreSQL suffice")
		}
		r, _ := d.open(t)
		store := &slowRouter{Router: r, fetch: 3 * time.Millisecond, acked: 2 * time.Millisecond}
		b := startBroker(t, store, &mochi.Options{Buffer: 4}, nil)
		const subID = "sub-gate"
		g := &slowWrites{client: subID, pause: 20 * time.Millisecond, hold: "m0", held: make(chan struct{}), open: make(chan struct{})}
		if err := b.server.AddHook(g, nil); err != nil {
			t.Fatal(err)
		}
		sub := dial(t, b.addr, subID, connOpts{Expiry: 3600})
		sub.Subscribe("gate/#", 1)
		pub := dial(t, b.addr, "pub-gate", connOpts{Clean: true})
		// The subscription made the delivery read the store; once it found
		// nothing more, the delivery is live.
		pub.Publish("gate/x", []byte("w"), 1, false)
		sub.WaitFor(1, 10*time.Second, 300*time.Millisecond)
		before := b.hook.Stats()
		want := append([]string{"w"}, numbered("m", 8)...)
		pub.Publish("gate/x", []byte("m0"), 1, false)
		select {
		case <-g.held:
		case <-time.After(10 * time.Second):
			close(g.open)
			t.Fatal("m0 was not sent live")
		}
		for _, m := range want[2:] {
			pub.Publish("gate/x", []byte(m), 1, false) // returns after the Hook routed it
		}
		if st := b.hook.Stats(); st.Spilled == 0 {
			t.Errorf("stats %+v: want messages spilled", st)
		}
		close(g.open)
		got := payloads(sub.WaitFor(0, 0, 2*time.Second))
		if st := b.hook.Stats(); st.Live == before.Live {
			t.Errorf("stats %+v, before m0 %+v: m0 was not sent live; the test did not test a spill during a live send", st, before)
		}
		if !equal(got, want) {
			sub.Disconnect()
			again := dial(t, b.addr, subID, connOpts{Expiry: 3600})
			more := payloads(again.WaitFor(0, 0, 2*time.Second))
			t.Fatalf("got %v, want %v; on reconnect %v; stats %+v", got, want, more, b.hook.Stats())
		}
	})
}

// A live subscriber that falls behind several publishers spills to the
// store again and again while the database is slow and its acks come back
// during the delivery's sends: every message still arrives, once, in order
// per publisher. (A live message sent after a spill, before the store was
// read for the spilled ones, used to have its ack move the topic's cursor
// past them: they were never delivered.)
func TestSpillWhileSendingLosesNothing(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		if d.name == "mysql" {
			t.Skip("SQLite and PostgreSQL suffice")
		}
		r, _ := d.open(t)
		store := &slowRouter{Router: r, publish: time.Millisecond, fetch: 3 * time.Millisecond, acked: 2 * time.Millisecond}
		b := startBroker(t, store, &mochi.Options{Window: 8, Buffer: 16, Page: 16}, nil)
		const subID = "sub-stall"
		if err := b.server.AddHook(&slowWrites{client: subID, pause: 300 * time.Microsecond}, nil); err != nil {
			t.Fatal(err)
		}
		sub := dial(t, b.addr, subID, connOpts{Expiry: 3600})
		sub.Subscribe("stall/#", 1)

		pubs, per := 6, 200
		if testing.Short() {
			per = 50
		}
		var wg sync.WaitGroup
		for p := range pubs {
			wg.Go(func() {
				c := dial(t, b.addr, fmt.Sprintf("pub-stall-%d", p), connOpts{Clean: true})
				for i := range per {
					if i%25 == 0 {
						// In bursts: the subscriber overflows its memory,
						// catches up from the store, goes live again, …
						time.Sleep(50 * time.Millisecond)
					}
					c.Publish(fmt.Sprintf("stall/%d", p), []byte(fmt.Sprintf("p%d-%d", p, i)), 1, false)
				}
			})
		}
		wg.Wait()
		total := pubs * per
		// Wait until all arrived or nothing arrived for a while.
		last, lastAt := 0, time.Now()
		for n := len(sub.Received()); n < total && time.Since(lastAt) < 10*time.Second; n = len(sub.Received()) {
			if n != last {
				last, lastAt = n, time.Now()
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // anything beyond total
		got := payloads(sub.Received())
		st := b.hook.Stats()

		next := map[int]int{}
		seen := map[string]bool{}
		var problems []string
		for _, g := range got {
			var p, i int
			if _, err := fmt.Sscanf(g, "p%d-%d", &p, &i); err != nil {
				problems = append(problems, "unexpected "+g)
				continue
			}
			if seen[g] {
				problems = append(problems, "duplicate "+g)
				continue
			}
			seen[g] = true
			if i != next[p] {
				problems = append(problems, fmt.Sprintf("publisher %d: message %d after %d", p, i, next[p]-1))
			}
			next[p] = i + 1
		}
		if len(got) != total || len(problems) > 0 {
			// A stall or a loss? Reconnect: the store hands over what it
			// still holds for the client.
			sub.Disconnect()
			again := dial(t, b.addr, subID, connOpts{Expiry: 3600})
			more := len(again.WaitFor(0, 0, 2*time.Second))
			t.Fatalf("got %d of %d messages (%d more on reconnect); stats %+v; %d problems, first: %v",
				len(got), total, more, st, len(problems), head(problems))
		}
		t.Logf("stats %+v", st) // Spilled is 0 when the subscriber kept up (a slow run)
	})
}
