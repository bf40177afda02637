package mochi_test

import (
	"testing"
	"time"
)

// A persistent subscriber goes offline, 100 QoS 1 messages are published,
// the broker is replaced by a new one on the same database, and the
// subscriber reconnects without subscribing again: it gets exactly those
// 100, in order, once, and nothing on its next reconnect.
func TestRestartReplaysOfflineMessagesOnce(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		r1, _ := d.open(t)
		b1 := startBroker(t, r1, nil, nil)
		sub := dial(t, b1.addr, "sub-restart", connOpts{Expiry: 3600})
		sub.Subscribe("t/#", 1)
		sub.Disconnect()

		pub := dial(t, b1.addr, "pub-restart", connOpts{Clean: true})
		want := numbered("m", 100)
		for _, p := range want {
			pub.Publish("t/x", []byte(p), 1, false)
		}
		pub.Disconnect()
		b1.close()

		r2, _ := d.open(t)
		b2 := startBroker(t, r2, nil, nil)
		sub = dial(t, b2.addr, "sub-restart", connOpts{Expiry: 3600})
		if !sub.Connack.SessionPresent {
			t.Error("CONNACK after restart: session present = false, want true (the stored subscriptions are the session)")
		}
		got := payloads(sub.WaitFor(100, 20*time.Second, 300*time.Millisecond))
		if !equal(got, want) {
			t.Fatalf("after restart: %s\ngot %v", diff(got, want), head(got))
		}
		sub.Disconnect()

		sub = dial(t, b2.addr, "sub-restart", connOpts{Expiry: 3600})
		if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
			t.Fatalf("next reconnect: got %d messages again: %s", len(got), summary(got))
		}
		// The restored subscription is live too.
		pub = dial(t, b2.addr, "pub-restart", connOpts{Clean: true})
		pub.Publish("t/y", []byte("live"), 1, false)
		if got := payloads(sub.WaitFor(1, 5*time.Second, 200*time.Millisecond)); !equal(got, []string{"live"}) {
			t.Fatalf("live after restart: got %v, want [live]", got)
		}
	})
}

// The same broker keeps the offline session in memory; the store, not
// mochi's memory, delivers what the subscriber missed: once, in order.
func TestReconnectSameBrokerOnce(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, nil, nil)
	sub := dial(t, b.addr, "sub-same", connOpts{Expiry: 3600})
	sub.Subscribe("t/#", 1)
	sub.Disconnect()

	pub := dial(t, b.addr, "pub-same", connOpts{Clean: true})
	want := numbered("m", 100)
	for _, p := range want {
		pub.Publish("t/x", []byte(p), 1, false)
	}
	sub = dial(t, b.addr, "sub-same", connOpts{Expiry: 3600})
	if !sub.Connack.SessionPresent {
		t.Error("session present = false, want true")
	}
	got := payloads(sub.WaitFor(100, 20*time.Second, 300*time.Millisecond))
	if !equal(got, want) {
		t.Fatalf("%s\ngot %v", diff(got, want), head(got))
	}
	sub.Disconnect()
	sub = dial(t, b.addr, "sub-same", connOpts{Expiry: 3600})
	if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("next reconnect: got %d messages again: %s", len(got), summary(got))
	}
}
