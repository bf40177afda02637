package mochi_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
