package mochi_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
	"github.com/mqttpersist/mqttpersist/sqlstore"
	"github.com/mqttpersist/mqttpersist/topic"
)

// bus stands in for a database's notifications (Redis pub/sub, PostgreSQL
// NOTIFY) between the store values of two nodes on one SQLite file, to
// test how the Hook uses a persist.Watcher; the stores' own Watch
// implementations are tested against their servers in their packages.
type bus struct {
	mu      sync.Mutex
	watches []*busWatch
}

// busStore is a real store whose Publish and Connected notify the bus.
// ackDelay makes its Acked slow, as a loaded database is: a node still
// recording a client's acks when the client is elsewhere already.
type busStore struct {
	*sqlstore.Store
	bus      *bus
	ackDelay time.Duration
	// beforeLookup, when set, runs before each Client lookup (a notice
	// may arrive just then).
	beforeLookup func(clientID string)
	// publishReturn makes Publish return that much later than it stored
	// and notified the messages, as a loaded node wakes its publisher late.
	publishReturn time.Duration
	// acksDown, while set, makes Acked fail at once, as a database that
	// refuses connections or drops them for a moment.
	acksDown *atomic.Bool
}

func (s *busStore) Client(ctx context.Context, clientID string) (*persist.Client, error) {
	if s.beforeLookup != nil {
		s.beforeLookup(clientID)
	}
	return s.Store.Client(ctx, clientID)
}

func (s *busStore) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	if s.ackDelay > 0 {
		time.Sleep(s.ackDelay)
	}
	if s.acksDown != nil && s.acksDown.Load() {
		return errors.New("busStore: the database is down")
	}
	return s.Store.Acked(ctx, clientID, acks...)
}

type busWatch struct {
	bus     *bus
	fn      func(persist.Notice)
	filters map[string]int
}

func (s *busStore) Publish(ctx context.Context, msgs ...*persist.Message) error {
	if err := s.Store.Publish(ctx, msgs...); err != nil {
		return err
	}
	for _, m := range msgs {
		s.bus.send(persist.Notice{Topic: m.Topic, Node: m.Node}, m.Topic)
	}
	time.Sleep(s.publishReturn)
	return nil
}

func (s *busStore) Connected(ctx context.Context, c *persist.Client) error {
	if err := s.Store.Connected(ctx, c); err != nil {
		return err
	}
	s.bus.send(persist.Notice{Client: c.ID, Node: c.Node, At: c.OnlineAt, Offline: !c.Online}, "")
	return nil
}

func (s *busStore) Watch(_ context.Context, fn func(persist.Notice)) (persist.Watch, error) {
	w := &busWatch{bus: s.bus, fn: fn, filters: map[string]int{}}
	s.bus.mu.Lock()
	s.bus.watches = append(s.bus.watches, w)
	s.bus.mu.Unlock()
	return w, nil
}

func (b *bus) send(n persist.Notice, name string) {
	b.mu.Lock()
	var to []func(persist.Notice)
	for _, w := range b.watches {
		for f := range w.filters {
			if name == "" || topic.Match(f, name) {
				to = append(to, w.fn)
				break
			}
		}
		if name == "" && len(w.filters) == 0 {
			to = append(to, w.fn)
		}
	}
	b.mu.Unlock()
	for _, fn := range to {
		fn(n)
	}
}

func (w *busWatch) Add(_ context.Context, fs ...string) error {
	w.bus.mu.Lock()
	defer w.bus.mu.Unlock()
	for _, f := range fs {
		w.filters[f]++
	}
	return nil
}

func (w *busWatch) Remove(_ context.Context, fs ...string) error {
	w.bus.mu.Lock()
	defer w.bus.mu.Unlock()
	for _, f := range fs {
		if w.filters[f]--; w.filters[f] <= 0 {
			delete(w.filters, f)
		}
	}
	return nil
}

func (w *busWatch) Close() error {
	w.bus.mu.Lock()
	defer w.bus.mu.Unlock()
	for i, x := range w.bus.watches {
		if x == w {
			w.bus.watches = append(w.bus.watches[:i], w.bus.watches[i+1:]...)
			break
		}
	}
	return nil
}

// twoNodes starts brokers "a" and "b" on one SQLite database, with a bus
// between their stores.
func twoNodes(t *testing.T) (a, b *broker, lookup persist.ClientLookup) {
	nodes, lookup := busNodes(t, 0, "a", "b")
	return nodes[0], nodes[1], lookup
}

// busNodes starts a broker per name on one SQLite database, with a bus
// between their stores; the first node's acks take ackDelay to record.
func busNodes(t *testing.T, ackDelay time.Duration, names ...string) (nodes []*broker, lookup persist.ClientLookup) {
	return busNodesWith(t, func(i int, st *busStore) {
		if i == 0 {
			st.ackDelay = ackDelay
		}
	}, names...)
}

// busNodesWith is busNodes with each node's store set up by setup (i: the
// node's place in names).
func busNodesWith(t *testing.T, setup func(i int, st *busStore), names ...string) (nodes []*broker, lookup persist.ClientLookup) {
	d := sqliteDB(t)
	bs := &bus{}
	node := func(i int, name string) *broker {
		_, s := d.open(t)
		lookup = s
		st := &busStore{Store: s, bus: bs}
		setup(i, st)
		r, err := persist.NewRouter(
			persist.Rule{Name: "queue", Filter: "queue/#", Store: st, Mode: persist.Queue},
			persist.Rule{Name: "fanout", Filter: "#", Store: st},
		)
		if err != nil {
			t.Fatal(err)
		}
		return startBroker(t, r, &mochi.Options{Node: name}, nil)
	}
	for i, name := range names {
		nodes = append(nodes, node(i, name))
	}
	return nodes, lookup
}

// A client connected to node A gets what is published on node B, live,
// without reconnecting: fanout and queue messages.
func TestCrossNodeLive(t *testing.T) {
	a, b, _ := twoNodes(t)
	sub := dial(t, a.addr, "live-sub", connOpts{Expiry: 3600})
	sub.Subscribe("live/#", 1)
	sub.Subscribe("queue/live", 1)
	pub := dial(t, b.addr, "live-pub", connOpts{Clean: true})
	want := numbered("m", 20)
	start := time.Now()
	for _, p := range want {
		pub.Publish("live/t", []byte(p), 1, false)
	}
	pub.Publish("queue/live", []byte("job"), 1, false)
	got := sub.WaitFor(len(want)+1, 5*time.Second, 200*time.Millisecond)
	t.Logf("%d messages from node b on node a in %v", len(got), time.Since(start).Round(time.Millisecond))
	if len(got) != len(want)+1 {
		t.Fatalf("node a's subscriber got %s, want the 20 fanout messages and the queue job from node b", summary(got))
	}
	if a.hook.Stats().Replayed < uint64(len(want)) {
		t.Errorf("node a replayed %d messages from the store, want at least %d", a.hook.Stats().Replayed, len(want))
	}
}

// A client that connects to node B while its connection to node A is open
// takes the session over: node A closes the old connection [MQTT-3.1.4-2].
func TestCrossNodeTakeover(t *testing.T) {
	a, b, _ := twoNodes(t)
	first := dial(t, a.addr, "mover", connOpts{Expiry: 3600})
	first.Subscribe("move/t", 1)
	time.Sleep(50 * time.Millisecond) // the connect on a is older
	second := dial(t, b.addr, "mover", connOpts{Expiry: 3600})
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl, ok := a.server.Clients.Get("mover")
		if !ok || cl.Closed() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node a still has the client's old connection 5s after it connected to node b")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub := dial(t, a.addr, "move-pub", connOpts{Clean: true})
	pub.Publish("move/t", []byte("after the move"), 1, false)
	if got := second.WaitFor(1, 5*time.Second, 200*time.Millisecond); len(got) != 1 {
		t.Fatalf("the new connection on node b got %s, want the message published on node a", summary(got))
	}
	if cl, ok := b.server.Clients.Get("mover"); !ok || cl.Closed() {
		t.Error("node b closed the new connection")
	}
}

// A client that acknowledged messages on node A and at once connects to
// node B gets none of them again: B reads the store only after A recorded
// the acks (A's disconnect notice), also when A still had the connection
// open (a takeover).
func TestCrossNodeMoveNoDuplicates(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		name := "Reconnect"
		if takeover {
			name = "Takeover"
		}
		t.Run(name, func(t *testing.T) {
			a, b, lookup := twoNodes(t)
			pub := dial(t, a.addr, "mv-pub", connOpts{Clean: true})
			const id = "mv-sub"
			for round := range 5 {
				sub := dial(t, a.addr, id, connOpts{Expiry: 3600})
				if round == 0 {
					sub.Subscribe("mv/t", 1)
				}
				want := numbered(fmt.Sprintf("r%d-", round), 50)
				for _, p := range want {
					pub.Publish("mv/t", []byte(p), 1, false)
				}
				if got := payloads(sub.WaitFor(len(want), 5*time.Second, 0)); !equal(got, want) {
					t.Fatalf("round %d on node a: %s", round, diff(got, want))
				}
				// The PUBACKs are on the wire (paho sends the last one
				// after the test saw its message).
				if !sub.Flush(5 * time.Second) {
					t.Fatalf("round %d: the client did not send its PUBACKs within 5s", round)
				}
				if !takeover {
					sub.Disconnect()
				}
				// Straight to node b: the acks of node a may not be
				// recorded yet.
				other := dial(t, b.addr, id, connOpts{Expiry: 3600})
				if got := other.WaitFor(0, time.Second, 300*time.Millisecond); len(got) != 0 {
					t.Fatalf("round %d: node b delivered %d messages the client had acknowledged on node a: %s", round, len(got), summary(got))
				}
				other.Disconnect()
				waitOffline(t, lookup, id, 5*time.Second)
			}
		})
	}
}

// A client that acknowledged messages on node A, whose acks take a while
// to record, moves on before they are: to node B, which it leaves before
// B heard that A recorded them, then to node C, or back to node B. The
// node it comes to last must not deliver the messages again: a
// connection that ends still waiting for the node before it hands that
// wait on (to its own disconnect's notice, or to the client's next
// connection on the node).
func TestCrossNodeMoveOnBeforeHandoff(t *testing.T) {
	for _, last := range []string{"c", "b"} {
		t.Run("to_"+last, func(t *testing.T) {
			nodes, lookup := busNodes(t, 700*time.Millisecond, "a", "b", "c")
			a, b, c := nodes[0], nodes[1], nodes[2]
			const id = "on-sub"
			ackedOn(t, a, id, "on/t").Disconnect()
			mid := dial(t, b.addr, id, connOpts{Expiry: 3600})
			time.Sleep(100 * time.Millisecond)
			mid.Disconnect()
			to := c
			if last == "b" {
				to = b
			}
			other := dial(t, to.addr, id, connOpts{Expiry: 3600})
			if got := other.WaitFor(0, 2*time.Second, 500*time.Millisecond); len(got) != 0 {
				t.Errorf("node %s delivered %d messages the client had acknowledged on node a: %s", last, len(got), summary(got))
			}
			other.Disconnect()
			waitOffline(t, lookup, id, 5*time.Second)
		})
	}
}

// A client acknowledges messages on node A while A's store fails for a
// moment, and moves to node B before the store is back. A records the acks
// once it is, before it tells B that it has (its disconnect): B delivers
// none of the messages again.
func TestCrossNodeMoveAcksOutlastOutage(t *testing.T) {
	var down atomic.Bool
	nodes, lookup := busNodesWith(t, func(i int, st *busStore) {
		if i == 0 {
			st.acksDown = &down
		}
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	const id = "outage-sub"
	pub := dial(t, a.addr, id+"-pub", connOpts{Clean: true})
	sub := dial(t, a.addr, id, connOpts{Expiry: 3600})
	sub.Subscribe("outage/t", 1)
	down.Store(true)
	want := numbered("m", 50)
	for _, p := range want {
		pub.Publish("outage/t", []byte(p), 1, false)
	}
	if got := payloads(sub.WaitFor(len(want), 5*time.Second, 0)); !equal(got, want) {
		t.Fatalf("on node a: %s", diff(got, want))
	}
	if !sub.Flush(5 * time.Second) {
		t.Fatal("the client did not send its PUBACKs within 5s")
	}
	sub.Disconnect()
	time.AfterFunc(300*time.Millisecond, func() { down.Store(false) })
	other := dial(t, b.addr, id, connOpts{Expiry: 3600})
	if got := other.WaitFor(0, 2*time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("node b delivered %d messages the client had acknowledged on node a while its store was down for 300ms: %s", len(got), summary(got))
	}
	other.Disconnect()
	waitOffline(t, lookup, id, 5*time.Second)
}

// A disconnect notice from node A that is not of the client's connection
// there now — an older connection's, arriving between the new connection's
// start on node B and its read of the client's record, which names the
// connection on A — must not release B's wait for A: B would read the
// store before A recorded the acks of the connection it takes over.
func TestCrossNodeStaleReleaseIgnored(t *testing.T) {
	const id = "stale-sub"
	nodes, _ := busNodesWith(t, func(i int, st *busStore) {
		switch i {
		case 0:
			st.ackDelay = 700 * time.Millisecond
		case 1:
			st.beforeLookup = func(clientID string) {
				if clientID == id {
					st.bus.send(persist.Notice{Client: id, Node: "a", Offline: true}, "")
				}
			}
		}
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	ackedOn(t, a, id, "stale/t")
	// Takeover: still connected on a.
	other := dial(t, b.addr, id, connOpts{Expiry: 3600})
	if got := other.WaitFor(0, 2*time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("node b delivered %d messages the client had acknowledged on node a: %s", len(got), summary(got))
	}
}

// A message published on node B, stored and heard of by node A, whose
// Publish on B returns late (a loaded node): the client gets it on A,
// acknowledges it and moves to B before B routes the message to its
// connected subscribers. B's connection of the client read the store
// after A recorded the ack and must not send the late live copy: the
// store's read covered every message whose publish began before it.
func TestCrossNodeLateLiveCopy(t *testing.T) {
	const id = "late-sub"
	nodes, _ := busNodesWith(t, func(i int, st *busStore) {
		if i == 1 {
			st.publishReturn = 1500 * time.Millisecond
		}
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	sub := dial(t, a.addr, id, connOpts{Expiry: 3600})
	sub.Subscribe("late/t", 1)
	pub := dial(t, b.addr, id+"-pub", connOpts{Clean: true})
	published := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := pub.PC.Publish(ctx, &paho.Publish{Topic: "late/t", QoS: 1, Payload: []byte("once")})
		published <- err
	}()
	if got := payloads(sub.WaitFor(1, 5*time.Second, 0)); !equal(got, []string{"once"}) {
		t.Fatalf("on node a: %s", diff(got, []string{"once"}))
	}
	if !sub.Flush(5 * time.Second) {
		t.Fatal("the client did not send its PUBACK within 5s")
	}
	sub.Disconnect()
	moved := time.Now()
	other := dial(t, b.addr, id, connOpts{Expiry: 3600})
	if err := <-published; err != nil {
		t.Fatalf("publish on node b: %v", err)
	}
	if time.Since(moved) < 200*time.Millisecond {
		t.Fatal("node b's Publish returned before the client had moved there: the test shows nothing")
	}
	if got := other.WaitFor(0, time.Second, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("node b delivered the message the client had acknowledged on node a again: %s", summary(got))
	}
}

// ackedOn connects client id to node n, subscribed to topic at QoS 1,
// publishes 50 messages to topic there and waits until the client has
// received them all and sent their PUBACKs; the client stays connected.
func ackedOn(t *testing.T, n *broker, id, topic string) *client {
	t.Helper()
	pub := dial(t, n.addr, id+"-pub", connOpts{Clean: true})
	sub := dial(t, n.addr, id, connOpts{Expiry: 3600})
	sub.Subscribe(topic, 1)
	want := numbered("m", 50)
	for _, p := range want {
		pub.Publish(topic, []byte(p), 1, false)
	}
	if got := payloads(sub.WaitFor(len(want), 5*time.Second, 0)); !equal(got, want) {
		t.Fatalf("on node %s: %s", n.addr, diff(got, want))
	}
	if !sub.Flush(5 * time.Second) {
		t.Fatal("the client did not send its PUBACKs within 5s")
	}
	return sub
}

// A shared subscription group is one group across nodes: each message
// goes to one member, whichever node it was published on — also a node
// where the group has no member — and what the group missed while no
// member was connected comes to the next member, on any node.
func TestCrossNodeSharedGroup(t *testing.T) {
	nodes, lookup := busNodes(t, 0, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	const group = "$share/workers/grp/#"
	m1 := dial(t, a.addr, "grp-m1", connOpts{Expiry: 3600})
	m1.Subscribe(group, 1)
	m2 := dial(t, b.addr, "grp-m2", connOpts{Expiry: 3600})
	m2.Subscribe(group, 1)
	pa := dial(t, a.addr, "grp-pub-a", connOpts{Clean: true})
	pc := dial(t, c.addr, "grp-pub-c", connOpts{Clean: true})
	var want []string
	for i := range 150 {
		p := fmt.Sprintf("c%03d", i)
		pc.Publish("grp/t", []byte(p), 1, false)
		want = append(want, p)
		if i%3 == 0 {
			p := fmt.Sprintf("a%03d", i)
			pa.Publish("grp/u", []byte(p), 1, false)
			want = append(want, p)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(m1.Received())+len(m2.Received()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a duplicate would come now
	got1, got2 := payloads(m1.Received()), payloads(m2.Received())
	t.Logf("member on node a got %d, member on node b %d, of %d", len(got1), len(got2), len(want))
	all := append(append([]string(nil), got1...), got2...)
	if !equal(sorted(all), sorted(want)) {
		t.Fatalf("the group's members together: %s", diff(sorted(all), sorted(want)))
	}
	// Every member away: the group's messages wait in the store.
	for _, m := range []*client{m1, m2} {
		if !m.Flush(5 * time.Second) {
			t.Fatal("a member did not send its PUBACKs within 5s")
		}
		m.Disconnect()
	}
	waitOffline(t, lookup, "grp-m1", 5*time.Second)
	waitOffline(t, lookup, "grp-m2", 5*time.Second)
	missed := numbered("missed-", 30)
	for _, p := range missed {
		pc.Publish("grp/t", []byte(p), 1, false)
	}
	back := dial(t, c.addr, "grp-m2", connOpts{Expiry: 3600})
	if got := payloads(back.WaitFor(len(missed), 10*time.Second, 500*time.Millisecond)); !equal(got, missed) {
		t.Fatalf("the member back on node c: %s", diff(got, missed))
	}
}

// A member whose session ends with its connection gives back the group's
// messages it held — those it was sent and did not acknowledge, and those
// it had claimed and not been sent yet: a member on another node gets them
// at once, not when the lease (30 s) runs out.
func TestCrossNodeSharedGroupMemberLeaves(t *testing.T) {
	nodes, _ := busNodes(t, 0, "a", "b")
	a, b := nodes[0], nodes[1]
	const group = "$share/leavers/lv/t"
	hold := make(chan struct{})
	m1 := dial(t, a.addr, "lv-m1", connOpts{ReceiveMax: 3, Handler: func(*paho.Publish) { <-hold }})
	m1.Subscribe(group, 1)
	pub := dial(t, a.addr, "lv-pub", connOpts{Clean: true})
	want := numbered("lv-", 20)
	for _, p := range want {
		pub.Publish("lv/t", []byte(p), 1, false)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.hook.Stats().Replayed < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // m1 holds 3 unacknowledged, and claims of more
	// Its session ends (expiry 0). paho waits for the handler: released
	// once the DISCONNECT is on the wire (the broker reads nothing after it).
	time.AfterFunc(300*time.Millisecond, func() { close(hold) })
	_ = m1.PC.Disconnect(&paho.Disconnect{ReasonCode: 0})
	start := time.Now()
	m2 := dial(t, b.addr, "lv-m2", connOpts{Clean: true})
	m2.Subscribe(group, 1)
	got := payloads(m2.WaitFor(len(want), 10*time.Second, 300*time.Millisecond))
	t.Logf("the member on node b got %d of %d in %v", len(got), len(want), time.Since(start).Round(time.Millisecond))
	if !equal(sorted(got), sorted(want)) {
		t.Fatalf("the member on node b after the first left: %s", diff(sorted(got), sorted(want)))
	}
}
