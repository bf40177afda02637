package mochi_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Retained messages survive a restart; an empty retained publish deletes
// the stored one, also for the next restart.
func TestRetainedSurvivesRestart(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		r1, _ := d.open(t)
		b1 := startBroker(t, r1, nil, nil)
		pub := dial(t, b1.addr, "pub-ret", connOpts{Clean: true})
		pub.Publish("r/a", []byte("1"), 1, true)
		pub.Publish("r/b", []byte("2"), 0, true)
		pub.Publish("r/c", []byte("3"), 1, true)
		pub.Publish("r/c", nil, 1, true) // deletes r/c
		pub.Disconnect()
		b1.close()

		r2, s2 := d.open(t)
		b2 := startBroker(t, r2, nil, nil)
		sub := dial(t, b2.addr, "sub-ret", connOpts{Clean: true})
		sub.Subscribe("r/#", 1)
		got := sub.WaitFor(2, 5*time.Second, 300*time.Millisecond)
		if g := sorted(payloads(got)); !equal(g, []string{"1", "2"}) {
			t.Fatalf("retained after restart: got %v, want [1 2]", g)
		}
		for _, p := range got {
			if !p.Retain {
				t.Errorf("%s: retain flag not set on a retained message", p.Topic)
			}
		}
		sub.Disconnect()

		pub = dial(t, b2.addr, "pub-ret", connOpts{Clean: true})
		pub.Publish("r/a", []byte{}, 1, true) // deletes r/a
		pub.Disconnect()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ms, err := s2.Retained(ctx, "r/#"); err != nil || len(ms) != 1 || ms[0].Topic != "r/b" {
			t.Fatalf("stored retained after delete: %v, %v; want only r/b", ms, err)
		}
		b2.close()

		r3, _ := d.open(t)
		b3 := startBroker(t, r3, nil, nil)
		sub = dial(t, b3.addr, "sub-ret", connOpts{Clean: true})
		sub.Subscribe("r/#", 1)
		if g := payloads(sub.WaitFor(1, 5*time.Second, 300*time.Millisecond)); !equal(g, []string{"2"}) {
			t.Fatalf("retained after second restart: got %v, want [2]", g)
		}
	})
}

// Messages published to queue/… before anyone subscribed go to the first
// consumer; two consumers that subscribe at once, or are subscribed while
// messages arrive, never both get a message, and none is lost.
func TestQueue(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		r, _ := d.open(t)
		b := startBroker(t, r, nil, nil)
		pub := dial(t, b.addr, "pub-q", connOpts{Clean: true})
		early := numbered("early", 20)
		for _, p := range early {
			pub.Publish("queue/jobs", []byte(p), 1, false)
		}
		first := dial(t, b.addr, "consumer-first", connOpts{Clean: true})
		first.Subscribe("queue/jobs", 1)
		if got := payloads(first.WaitFor(20, 10*time.Second, 300*time.Millisecond)); !equal(got, early) {
			t.Fatalf("first consumer: %s", diff(got, early))
		}

		// Two consumers subscribing at once to a backlog.
		batch := numbered("batch", 60)
		for _, p := range batch {
			pub.Publish("queue/work", []byte(p), 1, false)
		}
		a := dial(t, b.addr, "consumer-a", connOpts{Clean: true})
		c := dial(t, b.addr, "consumer-b", connOpts{Clean: true})
		var wg sync.WaitGroup
		for _, x := range []*client{a, c} {
			wg.Go(func() { x.Subscribe("queue/work", 1) })
		}
		wg.Wait()
		// Then live messages while both are subscribed.
		live := numbered("live", 100)
		for _, p := range live {
			pub.Publish("queue/work", []byte(p), 1, false)
		}
		want := append(append([]string(nil), batch...), live...)
		deadline := time.Now().Add(20 * time.Second)
		for len(a.Received())+len(c.Received()) < len(want) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		ga, gc := payloads(a.Received()), payloads(c.Received())
		all := append(append([]string(nil), ga...), gc...)
		if !equal(sorted(all), sorted(want)) {
			t.Fatalf("two consumers: %s", diff(all, want))
		}
		t.Logf("consumer a got %d, b got %d", len(ga), len(gc))
	})
}

// Two broker nodes share one database: a session that went offline on
// node A gets, on node B, what was published on node B, once; back on
// node A it gets nothing again.
func TestTwoNodes(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		ra, _ := d.open(t)
		rb, _ := d.open(t)
		a := startBroker(t, ra, nil, nil)
		b := startBroker(t, rb, nil, nil)

		sub := dial(t, a.addr, "sub-nodes", connOpts{Expiry: 3600})
		sub.Subscribe("n/#", 1)
		sub.Disconnect()

		pub := dial(t, b.addr, "pub-nodes", connOpts{Clean: true})
		want := numbered("m", 50)
		for _, p := range want {
			pub.Publish("n/x", []byte(p), 1, false)
		}
		sub = dial(t, b.addr, "sub-nodes", connOpts{Expiry: 3600})
		if !sub.Connack.SessionPresent {
			t.Error("node B: session present = false, want true")
		}
		if got := payloads(sub.WaitFor(50, 20*time.Second, 300*time.Millisecond)); !equal(got, want) {
			t.Fatalf("node B: %s", diff(got, want))
		}
		// Live on node B too, through the subscription restored from the
		// store.
		pub.Publish("n/y", []byte("live-b"), 1, false)
		sub.WaitFor(51, 5*time.Second, 100*time.Millisecond)
		sub.Disconnect()

		sub = dial(t, a.addr, "sub-nodes", connOpts{Expiry: 3600})
		if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
			t.Fatalf("back on node A: got %d messages again: %s", len(got), summary(got))
		}
		// Unsubscribed on node A: node B does not restore it.
		sub.Unsubscribe("n/#")
		sub.Disconnect()
		pub.Publish("n/z", []byte("after-unsubscribe"), 1, false)
		sub = dial(t, b.addr, "sub-nodes", connOpts{Expiry: 3600})
		if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
			t.Fatalf("after unsubscribe on node A, node B delivered %d: %s", len(got), summary(got))
		}
	})
}

// Client IDs and topics with quotes, semicolons, SQL, unicode and CR/LF,
// and binary payloads round-trip as data.
func TestHostileNamesRoundTrip(t *testing.T) {
	forEachDB(t, func(t *testing.T, d db) {
		r1, _ := d.open(t)
		b1 := startBroker(t, r1, nil, nil)
		ids := []string{`a'; DROP TABLE mqtt_msg; --`, `"quoted" \ back`, "ünï;cødé 日本 🚀", "cr\r\nlf"}
		topics := []string{`t/'; DROP TABLE mqtt_sub; --`, `t/"q"/;/%/_`, "t/ünï/日本/🚀", "t/cr\r\nlf", "t/a\\b"}
		payload := func(i int) []byte { return append([]byte{0, 0xff, '\'', ';', byte(i)}, "\r\n'--"...) }
		for _, id := range ids {
			s := dial(t, b1.addr, id, connOpts{Expiry: 3600})
			s.Subscribe("t/#", 1)
			s.Disconnect()
		}
		pub := dial(t, b1.addr, `pub'";`, connOpts{Clean: true})
		for i, tp := range topics {
			pub.Publish(tp, payload(i), 1, false)
		}
		pub.Publish(topics[0], []byte("retained'"), 1, true)
		pub.Disconnect()
		b1.close()

		r2, _ := d.open(t)
		b2 := startBroker(t, r2, nil, nil)
		for _, id := range ids {
			s := dial(t, b2.addr, id, connOpts{Expiry: 3600})
			got := s.WaitFor(len(topics)+1, 10*time.Second, 200*time.Millisecond)
			if len(got) != len(topics)+1 {
				t.Fatalf("client %q: got %d messages, want %d: %s", id, len(got), len(topics)+1, summary(got))
			}
			for i, tp := range topics {
				if got[i].Topic != tp || !bytes.Equal(got[i].Payload, payload(i)) {
					t.Errorf("client %q message %d: got %q %q, want %q %q", id, i, got[i].Topic, got[i].Payload, tp, payload(i))
				}
			}
			if last := got[len(topics)]; last.Topic != topics[0] || string(last.Payload) != "retained'" {
				t.Errorf("client %q: last message %q %q", id, last.Topic, last.Payload)
			}
		}
		s := dial(t, b2.addr, "fresh", connOpts{Clean: true})
		s.Subscribe(topics[0], 1)
		if got := s.WaitFor(1, 5*time.Second, 200*time.Millisecond); string(got[0].Payload) != "retained'" || got[0].Topic != topics[0] {
			t.Errorf("retained with a hostile topic: got %q %q", got[0].Topic, got[0].Payload)
		}
	})
}

// MQTT 5 properties survive the store, and the message expiry counts down.
func TestReplayKeepsMQTT5Properties(t *testing.T) {
	d := sqliteDB(t)
	r1, _ := d.open(t)
	b1 := startBroker(t, r1, nil, nil)
	sub := dial(t, b1.addr, "sub-props", connOpts{Expiry: 3600})
	sub.SubscribeOpts(paho.SubscribeOptions{Topic: "p/#", QoS: 2, RetainAsPublished: true})
	sub.Disconnect()

	pub := dial(t, b1.addr, "pub-props", connOpts{Clean: true})
	expiry, short := uint32(3600), uint32(1)
	pf := byte(1)
	pub.PublishMsg(&paho.Publish{Topic: "p/full", QoS: 2, Retain: true, Payload: []byte(`{"a":1}`), Properties: &paho.PublishProperties{
		PayloadFormat:   &pf,
		MessageExpiry:   &expiry,
		ContentType:     "application/json",
		ResponseTopic:   "reply/here",
		CorrelationData: []byte{0, 1, 2, 0xff},
		User:            paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "ü", Value: ""}},
	}})
	pub.PublishMsg(&paho.Publish{Topic: "p/short", QoS: 1, Payload: []byte("gone"), Properties: &paho.PublishProperties{MessageExpiry: &short}})
	pub.Publish("p/plain", []byte("plain"), 1, false)
	pub.Disconnect()
	b1.close()
	time.Sleep(2100 * time.Millisecond) // p/short expires

	r2, _ := d.open(t)
	b2 := startBroker(t, r2, nil, nil)
	sub = dial(t, b2.addr, "sub-props", connOpts{Expiry: 3600})
	got := sub.WaitFor(2, 10*time.Second, 300*time.Millisecond)
	if g := payloads(got); !equal(g, []string{`{"a":1}`, "plain"}) {
		t.Fatalf("got %v, want the full message and the plain one (the short one expired)", g)
	}
	m := got[0]
	p := m.Properties
	switch {
	case m.QoS != 2:
		t.Errorf("QoS %d, want 2", m.QoS)
	case !m.Retain:
		t.Error("retain flag lost (the subscription asked retain-as-published)")
	case p == nil:
		t.Fatal("no properties")
	case p.PayloadFormat == nil || *p.PayloadFormat != 1:
		t.Errorf("payload format %v", p.PayloadFormat)
	case p.ContentType != "application/json" || p.ResponseTopic != "reply/here" || !bytes.Equal(p.CorrelationData, []byte{0, 1, 2, 0xff}):
		t.Errorf("content type %q, response topic %q, correlation data %v", p.ContentType, p.ResponseTopic, p.CorrelationData)
	case fmt.Sprint(p.User) != fmt.Sprint(paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "ü", Value: ""}}):
		t.Errorf("user properties %v", p.User)
	case p.MessageExpiry == nil:
		t.Error("message expiry lost")
	case *p.MessageExpiry > 3599 || *p.MessageExpiry < 3500:
		// 2.1 s passed: at most 3598 left, 3599 with rounding to seconds.
		t.Errorf("message expiry %d, want what is left of 3600 s", *p.MessageExpiry)
	}
	if q := got[1]; q.QoS != 1 || q.Retain || (q.Properties != nil && q.Properties.MessageExpiry != nil) {
		t.Errorf("plain message: QoS %d retain %v expiry %v", q.QoS, q.Retain, q.Properties.MessageExpiry)
	}
}
