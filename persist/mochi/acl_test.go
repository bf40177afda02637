package mochi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// blindACL keeps the client "blind" from reading topics under
// queue/secret/.
func blindACL(cl *mqtt.Client, topic string, write bool) bool {
	return write || cl.ID != "blind" || !strings.HasPrefix(topic, "queue/secret/")
}

// waitPayloads waits until c got want (in any order), failing after
// timeout with what it got.
func waitPayloads(t *testing.T, c *client, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := payloads(c.Received())
		if equal(sorted(got), sorted(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %v: %s", c.ID, timeout, diff(sorted(got), sorted(want)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A queue message that a consumer may not read is not left claimed by
// it: another consumer gets it at once — one that subscribes later (while
// the first keeps fetching, which renews its claims), and one subscribed
// alongside it when the message comes live — never after the 30s lease.
func TestQueueRefusedByACLGoesToAnother(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		r, _ := d.open(t)
		b := startBroker(t, r, &mochi.Options{ACL: blindACL}, nil)
		blind := dial(t, b.addr, "blind", connOpts{Clean: true})
		blind.Subscribe("queue/#", 1)
		pub := dial(t, b.addr, "pub", connOpts{Clean: true})
		early := numbered("secret-early", 5)
		for _, p := range early {
			pub.Publish("queue/secret/a", []byte(p), 1, false)
		}
		// Open messages make blind fetch again and again.
		open := numbered("open", 5)
		for _, p := range open {
			pub.Publish("queue/open", []byte(p), 1, false)
		}
		waitPayloads(t, blind, open, 5*time.Second)

		seer := dial(t, b.addr, "seer", connOpts{Clean: true})
		seer.Subscribe("queue/#", 1)
		waitPayloads(t, seer, early, 3*time.Second)

		// Both subscribed: secret messages come live and both are asked
		// to claim; whichever claims first, seer gets each.
		live := numbered("secret-live", 30)
		for i, p := range live {
			pub.Publish(fmt.Sprintf("queue/secret/%d", i%3), []byte(p), 1, false)
		}
		waitPayloads(t, seer, append(append([]string(nil), early...), live...), 5*time.Second)
		if got := payloads(blind.Received()); !equal(got, open) {
			t.Fatalf("blind got %v, want only %v", got, open)
		}
	})
}

// A queue message a consumer gets back from the store but may not take by
// No Local (it published it) goes to another consumer.
func TestQueueRefusedByNoLocalGoesToAnother(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		r, _ := d.open(t)
		b := startBroker(t, r, nil, nil)
		self := dial(t, b.addr, "self", connOpts{Clean: true})
		self.SubscribeOpts(paho.SubscribeOptions{Topic: "queue/nl", QoS: 1, NoLocal: true})
		own := numbered("own", 5)
		for _, p := range own {
			self.Publish("queue/nl", []byte(p), 1, false)
		}
		// Another publisher's messages make self fetch: the store hands
		// it its own messages too, which it may not take.
		pub := dial(t, b.addr, "pub", connOpts{Clean: true})
		theirs := numbered("theirs", 5)
		for _, p := range theirs {
			pub.Publish("queue/nl", []byte(p), 1, false)
		}
		waitPayloads(t, self, theirs, 5*time.Second)

		other := dial(t, b.addr, "other", connOpts{Clean: true})
		other.Subscribe("queue/nl", 1)
		waitPayloads(t, other, own, 3*time.Second)
		if got := payloads(self.Received()); !equal(sorted(got), sorted(theirs)) {
			t.Fatalf("self got %v, want only %v", got, theirs)
		}
	})
}

// Refused queue messages ahead of the ones a consumer may take do not
// hold it up: with a page smaller than their number, it still gets the
// messages behind them (and does not fetch the same refused page for
// ever).
func TestQueueRefusedMoreThanAPage(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, &mochi.Options{ACL: blindACL, Page: 4, Window: 4}, nil)
	pub := dial(t, b.addr, "pub", connOpts{Clean: true})
	for _, p := range numbered("secret", 10) {
		pub.Publish("queue/secret/x", []byte(p), 1, false)
	}
	open := numbered("open", 3)
	for _, p := range open {
		pub.Publish("queue/open", []byte(p), 1, false)
	}
	blind := dial(t, b.addr, "blind", connOpts{Clean: true})
	blind.Subscribe("queue/#", 1)
	waitPayloads(t, blind, open, 5*time.Second)
}

// releaseFailsOnce is the real Router over the real store whose first
// release of refused queue messages (a fetch with the 1ms release lease)
// fails, as a busy database fails a call.
type releaseFailsOnce struct {
	*persist.Router
	failed atomic.Bool
}

func (s *releaseFailsOnce) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	if opt.Mode == persist.Queue && opt.Lease == time.Millisecond && !s.failed.Swap(true) {
		return nil, errors.New("releaseFailsOnce: the database is busy")
	}
	return s.Router.FetchOffline(ctx, clientID, filter, opt)
}

// A release of refused queue messages that fails is tried again a second
// later by itself — not only when something else wakes the consumer —
// so another consumer gets them long before their 30s lease runs out.
func TestQueueRefusedReleaseRetried(t *testing.T) {
	r, _ := sqliteDB(t).open(t)
	st := &releaseFailsOnce{Router: r}
	b := startBroker(t, st, &mochi.Options{ACL: blindACL}, nil)
	blind := dial(t, b.addr, "blind", connOpts{Clean: true})
	blind.Subscribe("queue/#", 1)
	pub := dial(t, b.addr, "pub", connOpts{Clean: true})
	jobs := numbered("secret", 5)
	for _, p := range jobs {
		pub.Publish("queue/secret/a", []byte(p), 1, false)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !st.failed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("blind did not release the refused messages within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	seer := dial(t, b.addr, "seer", connOpts{Clean: true})
	seer.Subscribe("queue/#", 1)
	waitPayloads(t, seer, jobs, 5*time.Second)
	if got := blind.Received(); len(got) != 0 {
		t.Fatalf("blind got %s, want nothing", summary(got))
	}
}
