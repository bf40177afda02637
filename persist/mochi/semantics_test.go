package mochi_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// What a client received live and acknowledged is not replayed later.
func TestLiveAckedIsNotReplayed(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, nil, nil)
	sub := dial(t, b.addr, "sub-live", connOpts{Expiry: 3600})
	sub.Subscribe("l/#", 1)
	pub := dial(t, b.addr, "pub-live", connOpts{Clean: true})
	want := numbered("l", 30)
	for _, p := range want {
		pub.Publish("l/a", []byte(p), 1, false)
	}
	if got := payloads(sub.WaitFor(30, 10*time.Second, 200*time.Millisecond)); !equal(got, want) {
		t.Fatalf("live: %s", diff(got, want))
	}
	sub.Disconnect()
	b.close()
	r2, _ := d.open(t)
	b2 := startBroker(t, r2, nil, nil)
	sub = dial(t, b2.addr, "sub-live", connOpts{Expiry: 3600})
	if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("after restart: %d messages it had acknowledged live came again: %s", len(got), summary(got))
	}
}

// A client that drops its connection in the middle of a replay gets the
// rest on the next connection: no gap, and again only what it had not
// acknowledged.
func TestInterruptedReplayResumes(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, &mochi.Options{Window: 8}, nil)
	sub := dial(t, b.addr, "sub-int", connOpts{Expiry: 3600})
	sub.Subscribe("i/#", 1)
	sub.Disconnect()
	pub := dial(t, b.addr, "pub-int", connOpts{Clean: true})
	want := numbered("i", 300)
	for _, p := range want {
		pub.Publish("i/a", []byte(p), 1, false)
	}

	var n atomic.Int64
	var firstPC atomic.Pointer[paho.Client]
	first := dial(t, b.addr, "sub-int", connOpts{Expiry: 3600, Handler: func(*paho.Publish) {
		if n.Add(1) == 100 {
			for firstPC.Load() == nil {
				time.Sleep(time.Millisecond)
			}
			firstPC.Load().TerminateConnectionForTest() // no DISCONNECT, no more acks
		}
	}})
	firstPC.Store(first.PC)
	<-first.PC.Done()
	got1 := payloads(first.Received())
	if len(got1) < 100 || !equal(got1, want[:len(got1)]) {
		t.Fatalf("first connection: %s", diff(got1, want[:len(got1)]))
	}
	time.Sleep(200 * time.Millisecond) // the broker notices
	second := dial(t, b.addr, "sub-int", connOpts{Expiry: 3600})
	got2 := payloads(second.WaitFor(len(want)-len(got1), 20*time.Second, 500*time.Millisecond))
	if len(got2) == 0 {
		t.Fatal("second connection got nothing")
	}
	k := len(want) - len(got2) // where the second connection starts
	t.Logf("first got %d (last %s), second starts with %v", len(got1), got1[len(got1)-1], head(got2))
	if k > len(got1) || k < 0 || !equal(got2, want[k:]) {
		t.Fatalf("second connection: got %d from %q, want the rest after what the first acknowledged (first got %d): %s",
			len(got2), got2[0], len(got1), diff(got2, want[max(k, 0):]))
	}
	// At most the unacknowledged ones (the window) come twice.
	if again := len(got1) - k; again > 8+1 {
		t.Errorf("%d messages came on both connections; only those in flight (window 8) may", again)
	}
}

// A client that takes over its own session while it is being replayed to
// (a second connection with the same client ID) loses nothing.
func TestTakeoverDuringReplay(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, &mochi.Options{Window: 4}, nil)
	sub := dial(t, b.addr, "sub-take", connOpts{Expiry: 3600})
	sub.Subscribe("k/#", 1)
	sub.Disconnect()
	pub := dial(t, b.addr, "pub-take", connOpts{Clean: true})
	want := numbered("k", 400)
	for _, p := range want {
		pub.Publish("k/a", []byte(p), 1, false)
	}
	var n atomic.Int64
	first := dial(t, b.addr, "sub-take", connOpts{Expiry: 3600, Handler: func(*paho.Publish) {
		if n.Add(1) > 50 {
			time.Sleep(5 * time.Millisecond)
		}
	}})
	for len(first.Received()) < 60 {
		time.Sleep(5 * time.Millisecond)
	}
	second := dial(t, b.addr, "sub-take", connOpts{Expiry: 3600})
	<-first.PC.Done()
	got2 := payloads(second.WaitFor(1, 20*time.Second, 0))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		got2 = payloads(second.Received())
		if len(got2) > 0 && got2[len(got2)-1] == want[len(want)-1] {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	got1, got2 := payloads(first.Received()), payloads(second.Received())
	all := map[string]int{}
	for _, p := range append(append([]string(nil), got1...), got2...) {
		all[p]++
	}
	var missing []string
	for _, w := range want {
		if all[w] == 0 {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("lost in the takeover: %d %v", len(missing), head(missing))
	}
	if twice := len(got1) + len(got2) - len(want); twice > 4+1 {
		t.Errorf("%d messages came twice; only those in flight (window 4) may", twice)
	}
}

// A clean start discards the stored session: its subscriptions are neither
// restored nor kept.
func TestCleanStartDiscardsStoredSubscriptions(t *testing.T) {
	d := sqliteDB(t)
	r, s := d.open(t)
	b := startBroker(t, r, nil, nil)
	sub := dial(t, b.addr, "sub-clean", connOpts{Expiry: 3600})
	sub.Subscribe("c/#", 1)
	sub.Disconnect()
	b.close()

	r2, _ := d.open(t)
	b2 := startBroker(t, r2, nil, nil)
	pub := dial(t, b2.addr, "pub-clean", connOpts{Clean: true})
	pub.Publish("c/a", []byte("while away"), 1, false)
	sub = dial(t, b2.addr, "sub-clean", connOpts{Clean: true, Expiry: 3600})
	if sub.Connack.SessionPresent {
		t.Error("clean start: session present = true")
	}
	pub.Publish("c/a", []byte("after clean start"), 1, false)
	if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("clean start: got %d messages: %s", len(got), summary(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if subs, err := s.Subscriptions(ctx, "sub-clean"); err != nil || len(subs) != 0 {
		t.Fatalf("stored subscriptions after a clean start: %v, %v; want none", subs, err)
	}
}

// A QoS 0 subscription gets stored messages at QoS 0, once.
func TestQoS0SubscriptionReplaysOnce(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, nil, nil)
	sub := dial(t, b.addr, "sub-q0", connOpts{Expiry: 3600})
	sub.Subscribe("z/#", 0)
	sub.Disconnect()
	pub := dial(t, b.addr, "pub-q0", connOpts{Clean: true})
	want := numbered("z", 10)
	for _, p := range want {
		pub.Publish("z/a", []byte(p), 1, false)
	}
	sub = dial(t, b.addr, "sub-q0", connOpts{Expiry: 3600})
	got := sub.WaitFor(10, 10*time.Second, 300*time.Millisecond)
	if !equal(payloads(got), want) {
		t.Fatalf("%s", diff(payloads(got), want))
	}
	for _, p := range got {
		if p.QoS != 0 {
			t.Fatalf("QoS %d, want 0 (min of message and subscription)", p.QoS)
		}
	}
	sub.Disconnect()
	sub = dial(t, b.addr, "sub-q0", connOpts{Expiry: 3600})
	if got := sub.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("next reconnect: %d again", len(got))
	}
}

// Members of a shared subscription to a queue topic split the messages.
func TestSharedQueueSubscription(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, nil, nil)
	pub := dial(t, b.addr, "pub-share", connOpts{Clean: true})
	before := numbered("before", 20)
	for _, p := range before {
		pub.Publish("queue/shared", []byte(p), 1, false)
	}
	a := dial(t, b.addr, "share-a", connOpts{Clean: true})
	c := dial(t, b.addr, "share-b", connOpts{Clean: true})
	a.Subscribe("$share/g/queue/shared", 1)
	c.Subscribe("$SHARE/g/queue/shared", 1) // mochi takes the prefix in any case
	after := numbered("after", 80)
	for _, p := range after {
		pub.Publish("queue/shared", []byte(p), 1, false)
	}
	want := append(append([]string(nil), before...), after...)
	deadline := time.Now().Add(20 * time.Second)
	for len(a.Received())+len(c.Received()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	all := append(payloads(a.Received()), payloads(c.Received())...)
	if !equal(sorted(all), sorted(want)) {
		t.Fatalf("%s", diff(all, want))
	}
}

// The client's connection state is stored as the seeds show it: online
// with its node and online_at, then offline with offline_at.
func TestClientState(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, &mochi.Options{Node: "node-7"}, nil)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	c := dial(t, b.addr, "state-client", connOpts{Clean: true})
	st, err := r.Client(ctx, "state-client")
	if err != nil || !st.Online || st.Node != "node-7" || st.OnlineAt.Before(before) || st.PeerHost != "127.0.0.1" {
		t.Fatalf("connected: %+v, %v", st, err)
	}
	c.Disconnect()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err = r.Client(ctx, "state-client")
		if err == nil && !st.Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("disconnected: %+v, %v", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.OfflineAt.Before(st.OnlineAt) || st.Node != "node-7" {
		t.Fatalf("disconnected: %+v", st)
	}
}

// An MQTT 3.1.1 client (persistent session, clean session off) gets what
// it missed across a restart too.
func TestMQTT311ClientAcrossRestart(t *testing.T) {
	d := sqliteDB(t)
	r1, _ := d.open(t)
	b1 := startBroker(t, r1, nil, nil)
	var mu sync.Mutex
	var got []string
	connect := func(addr string) paho3.Client {
		o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("v3-client").
			SetCleanSession(false).SetAutoReconnect(false).SetOrderMatters(true).
			SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
				mu.Lock()
				got = append(got, string(m.Payload()))
				mu.Unlock()
			})
		c := paho3.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		return c
	}
	c := connect(b1.addr)
	if tok := c.Subscribe("v3/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c.Disconnect(100)
	pub := dial(t, b1.addr, "pub-v3", connOpts{Clean: true})
	want := numbered("v", 50)
	for _, p := range want {
		pub.Publish("v3/a", []byte(p), 1, false)
	}
	b1.close()
	r2, _ := d.open(t)
	b2 := startBroker(t, r2, nil, nil)
	c = connect(b2.addr)
	defer c.Disconnect(100)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if !equal(got, want) {
		t.Fatalf("%s", diff(got, want))
	}
}

// Bad arguments stop the hook from being added, with a message that names
// them.
func TestBadOptions(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	for _, c := range []struct {
		server *mqtt.Server
		store  persist.Store
		opts   *mochi.Options
		config any
		want   string
	}{
		{nil, r, nil, nil, "nil server"},
		{mqtt.New(&mqtt.Options{Logger: logger()}), nil, nil, nil, "nil store"},
		{mqtt.New(&mqtt.Options{Logger: logger()}), r, &mochi.Options{Timeout: -time.Second}, nil, "negative Timeout -1s"},
		{mqtt.New(&mqtt.Options{Logger: logger()}), r, &mochi.Options{Window: -1}, nil, "negative Window -1"},
		{mqtt.New(&mqtt.Options{Logger: logger()}), r, &mochi.Options{Buffer: -2}, nil, "negative Buffer -2"},
		{mqtt.New(&mqtt.Options{Logger: logger()}), r, &mochi.Options{Page: -3}, nil, "negative Page -3"},
		{mqtt.New(&mqtt.Options{Logger: logger()}), r, nil, "yaml", "unexpected config string"},
	} {
		server := c.server
		if server == nil {
			server = mqtt.New(&mqtt.Options{Logger: logger()})
		}
		err := server.AddHook(mochi.New(c.server, c.store, c.opts), c.config)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddHook: %v; want an error saying %q", err, c.want)
		}
	}
}

// With Options.Fallback, when the store fails the broker goes on as mochi
// alone would: live delivery works, and each failure is counted.
func TestStoreFailureFallsBackToMemory(t *testing.T) {
	d := sqliteDB(t)
	r, s := d.open(t)
	b := startBroker(t, r, &mochi.Options{Fallback: true}, nil)
	sub := dial(t, b.addr, "sub-fail", connOpts{Expiry: 3600})
	sub.Subscribe("f/#", 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b.addr, "pub-fail", connOpts{Clean: true})
	pub.Publish("f/a", []byte("one"), 1, false)
	if got := payloads(sub.WaitFor(1, 5*time.Second, 200*time.Millisecond)); !equal(got, []string{"one"}) {
		t.Fatalf("live with a failed store: %v", got)
	}
	sub.Disconnect()
	pub.Publish("f/a", []byte("two"), 1, false)
	sub = dial(t, b.addr, "sub-fail", connOpts{Expiry: 3600})
	if got := payloads(sub.WaitFor(1, 5*time.Second, 300*time.Millisecond)); !equal(got, []string{"two"}) {
		t.Fatalf("offline with a failed store (mochi's memory): %v", got)
	}
	if st := b.hook.Stats(); st.Failed == 0 {
		t.Errorf("stats %+v: no failure counted", st)
	}
	if _, err := r.Client(context.Background(), "x"); !errors.Is(err, persist.ErrClosed) {
		t.Fatalf("store not closed: %v", err)
	}
}

// By default a QoS 1 message the store failed to take is refused: the
// MQTT 5 publisher gets a PUBACK with an error reason, and no subscriber
// gets the message; QoS 0 still goes through mochi's memory.
func TestStoreFailureRefusesPublish(t *testing.T) {
	d := sqliteDB(t)
	r, s := d.open(t)
	b := startBroker(t, r, &mochi.Options{Timeout: time.Second}, nil)
	sub := dial(t, b.addr, "sub-refused", connOpts{Expiry: 3600})
	sub.Subscribe("f/#", 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b.addr, "pub-refused", connOpts{Clean: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pub.PC.Publish(ctx, &paho.Publish{Topic: "f/a", Payload: []byte("one"), QoS: 1})
	if err == nil && (resp == nil || resp.ReasonCode < 0x80) {
		t.Fatalf("publish with a failed store acknowledged: %+v", resp)
	}
	pub.Publish("f/zero", []byte("zero"), 0, false)
	if got := payloads(sub.WaitFor(1, 5*time.Second, 300*time.Millisecond)); !equal(got, []string{"zero"}) {
		t.Fatalf("subscriber got %v; want only the QoS 0 message", got)
	}
	if st := b.hook.Stats(); st.Failed == 0 {
		t.Errorf("stats %+v: no failure counted", st)
	}
}

// Names the store cannot take (longer than sqlstore's 1024 bytes) do not
// stop the rest: a subscription with a long filter and a message with a
// long topic go through mochi's memory, everything else through the store.
func TestStoreRejectsLongNames(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	b := startBroker(t, r, nil, nil)
	long := "long/" + strings.Repeat("x", 1100)
	sub := dial(t, b.addr, "sub-long", connOpts{Expiry: 3600})
	sub.Subscribe("ok/#", 1)
	sub.Subscribe(long+"/#", 1)
	sub.Disconnect()
	pub := dial(t, b.addr, "pub-long", connOpts{Clean: true})
	want := numbered("ok", 5)
	for _, p := range want {
		pub.Publish("ok/a", []byte(p), 1, false)
	}
	pub.Publish(long+"/a", []byte("long"), 1, false)
	sub = dial(t, b.addr, "sub-long", connOpts{Expiry: 3600})
	got := payloads(sub.WaitFor(6, 10*time.Second, 300*time.Millisecond))
	if w := append(append([]string(nil), want...), "long"); !equal(sorted(got), sorted(w)) {
		t.Fatalf("%s", diff(got, w))
	}
	pub.Publish("ok/b", []byte("live"), 1, false)
	if got := payloads(sub.WaitFor(7, 5*time.Second, 200*time.Millisecond)); got[6] != "live" {
		t.Fatalf("live after a rejected filter: %v", got)
	}
	st := b.hook.Stats()
	if st.Failed == 0 {
		t.Errorf("stats %+v: the rejected names were not counted", st)
	}
	if st.Live == 0 {
		t.Errorf("stats %+v: the live message came from the store; the delivery never got past the rejected filter", st)
	}
}

// The broker's inline subscriptions get persisted messages as they get any
// other, once; Options.ACL keeps per-topic read rules for persisted
// messages, live and replayed.
func TestInlineSubscriptionAndACL(t *testing.T) {
	d := sqliteDB(t)
	r, _ := d.open(t)
	deny := func(cl *mqtt.Client, topic string, write bool) bool {
		return write || cl.ID != "reader" || !strings.HasPrefix(topic, "acl/secret")
	}
	b := startBroker(t, r, &mochi.Options{ACL: deny}, nil)
	var mu sync.Mutex
	var inline []string
	if err := b.server.Subscribe("acl/#", 7, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		mu.Lock()
		inline = append(inline, string(pk.Payload))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	reader := dial(t, b.addr, "reader", connOpts{Expiry: 3600})
	reader.Subscribe("acl/#", 1)
	pub := dial(t, b.addr, "pub-acl", connOpts{Clean: true})
	pub.Publish("acl/open", []byte("open-live"), 1, false)
	pub.Publish("acl/secret", []byte("secret-live"), 1, false)
	if got := payloads(reader.WaitFor(1, 5*time.Second, 300*time.Millisecond)); !equal(got, []string{"open-live"}) {
		t.Fatalf("live: reader got %v, want [open-live]", got)
	}
	reader.Disconnect()
	pub.Publish("acl/secret", []byte("secret-stored"), 1, false)
	pub.Publish("acl/open", []byte("open-stored"), 1, false)
	reader = dial(t, b.addr, "reader", connOpts{Expiry: 3600})
	if got := payloads(reader.WaitFor(1, 5*time.Second, 300*time.Millisecond)); !equal(got, []string{"open-stored"}) {
		t.Fatalf("replay: reader got %v, want [open-stored]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"open-live", "secret-live", "secret-stored", "open-stored"}; !equal(inline, want) {
		t.Fatalf("inline subscription got %v, want %v", inline, want)
	}
}
