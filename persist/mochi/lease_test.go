package mochi_test

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// A queue message whose claim is half used up before the delivery can
// send it (a slow consumer, one message in flight) is claimed again at
// once, not left until some new message makes the delivery read the store.
func TestQueueHalfLeaseClaimedAgain(t *testing.T) {
	r, _ := sqliteDB(t).open(t)
	b := startBroker(t, r, &mochi.Options{Node: "n", Window: 1, Fetch: persist.Fetch{Lease: 300 * time.Millisecond}}, nil)
	jobs := numbered("job", 4)
	pub := dial(t, b.addr, "lease-pub", connOpts{Clean: true})
	for _, j := range jobs {
		pub.Publish("queue/slow", []byte(j), 1, false)
	}
	slow := dial(t, b.addr, "lease-consumer", connOpts{Expiry: 3600, Handler: func(*paho.Publish) {
		time.Sleep(200 * time.Millisecond) // more than half the lease per message
	}})
	slow.Subscribe("queue/slow", 1)
	got := slow.WaitFor(len(jobs), 10*time.Second, 300*time.Millisecond)
	if p := payloads(got); !equal(sorted(p), jobs) {
		t.Fatalf("the slow consumer got %s, want every job once", diff(sorted(p), jobs))
	}
}
