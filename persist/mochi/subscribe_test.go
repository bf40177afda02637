package mochi_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttpersist/mqttpersist/persist"
)

// slowSubscribe is the real Router over the real store, with the storing of
// subscriptions to filters under prefix held up as by a busy database.
type slowSubscribe struct {
	*persist.Router
	prefix string
	delay  time.Duration
}

func (s *slowSubscribe) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	for _, sub := range subs {
		if strings.HasPrefix(sub.Filter, s.prefix) {
			time.Sleep(s.delay)
			break
		}
	}
	return s.Router.Subscribed(ctx, clientID, subs, removed)
}

// A new subscription gets no history, even when the client's delivery
// fetches from the store (here for a queue message) while the subscription
// is in mochi's session but not yet in the store: a fetch for it then would
// have no start and replay every stored message of the topic.
func TestNewSubscriptionGetsNoHistoryWhileStoring(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, &slowSubscribe{Router: r, prefix: "hist", delay: time.Second}, nil, nil)
	pub := dial(t, b.addr, "pub-hist", connOpts{Clean: true})
	for _, p := range numbered("old", 5) {
		pub.Publish("hist/x", []byte(p), 1, false)
	}
	sub := dial(t, b.addr, "sub-hist", connOpts{Expiry: 3600})
	sub.Subscribe("queue/h", 1)
	done := make(chan struct{})
	go func() { defer close(done); sub.Subscribe("hist/#", 1) }() // stored a second later
	time.Sleep(300 * time.Millisecond)
	pub.Publish("queue/h", []byte("q"), 1, false) // the delivery fetches meanwhile
	<-done
	pub.Publish("hist/x", []byte("new"), 1, false)
	got := payloads(sub.WaitFor(2, 10*time.Second, 500*time.Millisecond))
	if !equal(sorted(got), []string{"new", "q"}) {
		t.Fatalf("new subscriber got %v; want only the queue message and the one published after it subscribed", got)
	}
}

// A client whose stored messages are in flight to it (unacknowledged) can
// still subscribe: mochi refuses a SUBSCRIBE whose packet ID is that of a
// message in flight to the client, and clients number their packets from 1,
// so deliveries take their IDs from the upper half.
func TestSubscribeWhileStoredMessagesInFlight(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, nil, nil)
	sub := dial(t, b.addr, "sub-pid", connOpts{Expiry: 3600})
	sub.Subscribe("pid/#", 1)
	sub.Disconnect()
	pub := dial(t, b.addr, "pub-pid", connOpts{Clean: true})
	for _, p := range numbered("m", 20) {
		pub.Publish("pid/x", []byte(p), 1, false)
	}
	release := make(chan struct{})
	hold := func(*paho.Publish) { <-release } // no PUBACK until the SUBSCRIBE is answered
	sub = dial(t, b.addr, "sub-pid", connOpts{Expiry: 3600, Handler: hold})
	defer close(release)
	deadline := time.Now().Add(10 * time.Second)
	for atomic.LoadInt64(&b.server.Info.Inflight) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := sub.PC.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "other/#", QoS: 1}}})
	if err != nil {
		t.Fatalf("subscribe with stored messages in flight: %v", err)
	}
	if len(ack.Reasons) != 1 || ack.Reasons[0] >= 0x80 {
		t.Fatalf("subscribe with stored messages in flight refused: reason codes %v", ack.Reasons)
	}
}
