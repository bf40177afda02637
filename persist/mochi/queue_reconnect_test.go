package mochi_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttpersist/mqttpersist/persist"
)

// A queue consumer that disconnects with messages it was handed but did
// not ack (claimed for it in the store with the default 30s lease) and
// reconnects — to the same node or to another one sharing the database —
// gets them again at once, not when the lease runs out: each message
// reaches it, none is lost, and none it acked comes again.
func TestQueueReconnectGetsOwnClaims(t *testing.T) {
	for _, other := range []bool{false, true} {
		name := "SameNode"
		if other {
			name = "OtherNode"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := sqliteDB(t)
			ra, sa := d.open(t)
			a := startBroker(t, ra, nil, nil)
			b := a
			if other {
				rb, _ := d.open(t)
				b = startBroker(t, rb, nil, nil)
			}
			const id = "queue-consumer"
			jobs := numbered("job", 10)
			pub := dial(t, a.addr, "queue-pub", connOpts{Clean: true})
			for _, p := range jobs {
				pub.Publish("queue/jobs", []byte(p), 1, false)
			}

			// The consumer's handler runs before paho acks a message: it
			// lets the first two through and holds the third (and all
			// after it) until release, so the consumer acks job0 and job1
			// only and has job2 and what followed it in flight.
			var (
				n       atomic.Int32
				stuck   = make(chan struct{})
				release = make(chan struct{})
				once    sync.Once
			)
			free := func() { once.Do(func() { close(release) }) }
			first := dial(t, a.addr, id, connOpts{Clean: true, Expiry: 3600, Handler: func(p *paho.Publish) {
				if n.Add(1) == 3 {
					close(stuck)
				}
				if n.Load() >= 3 {
					<-release
				}
			}})
			t.Cleanup(free) // runs before the client's own cleanup
			first.Subscribe("queue/jobs", 1)
			select {
			case <-stuck:
			case <-time.After(10 * time.Second):
				t.Fatalf("the consumer got %d messages, want a third: %s", n.Load(), summary(first.Received()))
			}
			if got, want := payloads(first.Received()), jobs[:2]; !equal(got, want) {
				t.Fatalf("acked before the disconnect: %s", diff(got, want))
			}

			// Disconnect while the third message is held: paho sends
			// DISCONNECT and closes the connection, and sends no more
			// acks (its Disconnect returns once the handler is free).
			left := time.Now()
			go func() { _ = first.PC.Disconnect(&paho.Disconnect{ReasonCode: 0}) }()
			// Node A has read the acks and the DISCONNECT behind them and
			// recorded them before the client comes back (a client that
			// takes its session over sooner, while the broker has not
			// read its acks yet, gets those messages again: at least
			// once).
			waitOffline(t, sa, id, 2*time.Second)
			if since := time.Since(left); since > 2*time.Second {
				t.Fatalf("reconnecting after %v, want within 2s", since)
			}
			second := dial(t, b.addr, id, connOpts{Expiry: 3600})
			reconnected := time.Now()
			if !second.Connack.SessionPresent {
				t.Error("session present = false, want true")
			}
			// Well before the 30s lease the consumer claimed them with.
			second.WaitFor(len(jobs)-2, 5*time.Second, 0)
			t.Logf("the unacked messages arrived %v after the reconnect (lease %v)", time.Since(reconnected).Round(time.Millisecond), persist.DefaultLease)
			time.Sleep(300 * time.Millisecond) // for any beyond them
			if got, want := payloads(second.Received()), jobs[2:]; !equal(got, want) {
				t.Fatalf("after the reconnect: %s", diff(got, want))
			}
			free()

			// All acked now: nobody gets any of them again.
			second.Disconnect()
			late := dial(t, b.addr, "queue-late", connOpts{Clean: true})
			late.Subscribe("queue/jobs", 1)
			again := dial(t, a.addr, id, connOpts{Expiry: 3600})
			if got := late.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
				t.Errorf("another consumer after every ack: got %s", summary(got))
			}
			if got := again.Received(); len(got) != 0 {
				t.Errorf("the consumer after acking all: got %s", summary(got))
			}
		})
	}
}

// waitOffline waits until the store has client id offline.
func waitOffline(t *testing.T, cl persist.ClientLookup, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := cl.Client(t.Context(), id)
		if err == nil && !c.Online {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %q not offline in the store after %v: %+v, %v", id, timeout, c, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
