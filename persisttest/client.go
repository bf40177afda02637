package persisttest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// testCapabilities checks what the suite found out about the store (and
// says it), and that the harness can test it.
func (s *suite) testCapabilities(t *testing.T) {
	st := s.store(t)
	c := capsOf(st)
	t.Logf("store %s", c)
	if c != s.caps {
		t.Errorf("Harness.New returned stores that differ: %s, then %s", s.caps, c)
	}
	f := s.h.Features
	switch {
	case c.events&persist.AllEvents == 0:
		t.Errorf("store %T handles no events (its Events are %v)", st, c.events)
	case !c.events.Has(persist.OnFetch) && s.h.ReadBack == nil:
		t.Errorf("store %T is write-only (its Events %v leave out OnFetch) and Harness.ReadBack is nil: nothing it writes can be checked", st, c.events)
	case c.events.Has(persist.OnFetch) && f.Drops != 0:
		t.Errorf("Features.Drops is %#x, but store %T handles OnFetch: a store that reads messages back keeps every field", f.Drops, st)
	}
	if f.NoQueue && f.NoFanout && c.events.Has(persist.OnPublish) {
		t.Errorf("store %T handles OnPublish but declares Features.NoQueue and Features.NoFanout", st)
	}
	if f.MaxPayload < 0 {
		t.Errorf("Features.MaxPayload is %d", f.MaxPayload)
	}
	if l := persist.LimitsOf(st); l.ClientID < 0 || l.Topic < 0 || l.Text < 0 || l.ID < 0 || l.Payload < 0 {
		t.Errorf("store %T declares negative Limits %+v", st, l)
	} else if l != (persist.Limits{}) {
		t.Logf("store declares Limits %+v", l)
	}
	if p, ok := st.(persist.Pinger); ok {
		if err := p.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
}

// testIsolation checks the harness: two stores do not see each other's
// data, which every other case relies on.
func (s *suite) testIsolation(t *testing.T) {
	a, b := s.store(t), s.store(t)
	mode := s.anyMode(t)
	m := NewMessage("iso/t", []byte("a's"))
	m.Mode = mode
	publish(t, a, m)
	if got := s.read(t, b, "iso-reader", "#", mode); len(got) != 0 {
		t.Errorf("second store returns the first store's messages: %s", fmtMsgs(got))
	}
	if got := s.read(t, a, "iso-reader", "#", mode); len(got) != 1 {
		t.Errorf("first store returns %s, want its one message", fmtMsgs(got))
	}
	if s.has(persist.OnSubscribed) {
		subscribe(t, a, "iso-c", []persist.Subscription{{Filter: "iso/t", QoS: 1}}, nil)
	}
	if sl, ok := s.hasSubLookup(b); ok {
		subs, err := sl.Subscriptions(t.Context(), "iso-c")
		if err != nil || len(subs) != 0 {
			t.Errorf("second store: Subscriptions = %+v, %v; want none", subs, err)
		}
	}
	if s.has(persist.OnConnected) {
		if err := a.Connected(t.Context(), &persist.Client{ID: "iso-c", Node: "n1", Online: true, OnlineAt: time.Now()}); err != nil {
			t.Fatalf("Connected: %v", err)
		}
	}
	if cl, ok := s.hasClientLookup(b); ok {
		if c, err := cl.Client(t.Context(), "iso-c"); !errors.Is(err, persist.ErrNotFound) {
			t.Errorf("second store: Client = %+v, %v; want ErrNotFound", c, err)
		}
	}
	if _, ok := s.hasRetainLookup(a); ok {
		r := NewMessage("iso/r", []byte("r"))
		r.Retain = true
		retain(t, a, r)
		rl, _ := s.hasRetainLookup(b)
		if got := retained(t, rl, "#"); len(got) != 0 {
			t.Errorf("second store returns the first store's retained messages: %s", fmtMsgs(got))
		}
	}
}

// zone is a time zone far from UTC and from the machine's, so a store that
// drops zones (stores wall-clock time) is caught.
var zone = time.FixedZone("UTC+05:30", 5*3600+1800)

func (s *suite) testClient(t *testing.T) {
	t.Run("ConnectDisconnect", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		id := s.uniq("client")
		t1 := time.Now().Add(-time.Minute).In(zone)
		c := &persist.Client{ID: id, Username: "user-ü", PeerHost: "192.0.2.7:50123", Node: "node1@127.0.0.1", Online: true, OnlineAt: t1}
		if err := st.Connected(t.Context(), c); err != nil {
			t.Fatalf("Connected(online): %v", err)
		}
		cl := s.clientLookup(t, st)
		want := *c
		checkClient(t, "after connect", cl, id, &want)

		// A disconnect carries the offline time; the connect time stays.
		t2 := time.Now().Add(-30 * time.Second).In(zone)
		off := &persist.Client{ID: id, Username: c.Username, PeerHost: c.PeerHost, Node: c.Node, Online: false, OfflineAt: t2}
		if err := st.Connected(t.Context(), off); err != nil {
			t.Fatalf("Connected(offline): %v", err)
		}
		want.Online, want.OfflineAt = false, t2
		checkClient(t, "after disconnect (a zero OnlineAt keeps the stored one)", cl, id, &want)
	})
	t.Run("ReconnectOtherNode", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		cl := s.clientLookup(t, st)
		id := s.uniq("client")
		t1 := time.Now().Add(-time.Hour)
		t2 := t1.Add(10 * time.Minute)
		t3 := t2.Add(5 * time.Minute)
		for _, c := range []*persist.Client{
			{ID: id, Username: "u", PeerHost: "10.0.0.1", Node: "node1", Online: true, OnlineAt: t1},
			{ID: id, Username: "u", PeerHost: "10.0.0.1", Node: "node1", Online: false, OfflineAt: t2},
			{ID: id, Username: "u2", PeerHost: "10.0.0.2", Node: "node2", Online: true, OnlineAt: t3},
		} {
			if err := st.Connected(t.Context(), c); err != nil {
				t.Fatalf("Connected(%+v): %v", c, err)
			}
		}
		checkClient(t, "after reconnect on node2 (the last OfflineAt stays)", cl, id,
			&persist.Client{ID: id, Username: "u2", PeerHost: "10.0.0.2", Node: "node2", Online: true, OnlineAt: t3, OfflineAt: t2})

		// A takeover: connected again on node3 without a disconnect.
		t4 := t3.Add(time.Minute)
		if err := st.Connected(t.Context(), &persist.Client{ID: id, Username: "u2", PeerHost: "10.0.0.3", Node: "node3", Online: true, OnlineAt: t4}); err != nil {
			t.Fatal(err)
		}
		checkClient(t, "after takeover on node3", cl, id,
			&persist.Client{ID: id, Username: "u2", PeerHost: "10.0.0.3", Node: "node3", Online: true, OnlineAt: t4, OfflineAt: t2})
	})
	t.Run("DisconnectAfterMove", func(t *testing.T) {
		// A client leaves node a and reconnects to node b; a's disconnect
		// reaches the store after b's connect. The client stays online on b.
		t.Parallel()
		st := s.store(t)
		cl := s.clientLookup(t, st)
		id := s.uniq("client")
		t1 := time.Now().Add(-time.Hour).In(zone)
		t2 := t1.Add(10 * time.Minute)
		connected(t, st,
			&persist.Client{ID: id, Username: "u", PeerHost: "10.0.0.1", Node: "node-a", Online: true, OnlineAt: t1},
			&persist.Client{ID: id, Username: "u2", PeerHost: "10.0.0.2", Node: "node-b", Online: true, OnlineAt: t2},
			&persist.Client{ID: id, Username: "u", PeerHost: "10.0.0.1", Node: "node-a", Online: false, OfflineAt: t2.Add(-time.Second)})
		onB := &persist.Client{ID: id, Username: "u2", PeerHost: "10.0.0.2", Node: "node-b", Online: true, OnlineAt: t2}
		checkClient(t, "after node-a's late disconnect (the client moved to node-b)", cl, id, onB)

		// A disconnect naming no node is not from node-b either.
		connected(t, st, &persist.Client{ID: id, Online: false, OfflineAt: t2.Add(time.Second)})
		checkClient(t, "after a disconnect without a node", cl, id, onB)

		// The disconnect from the node the client is on applies.
		t3 := t2.Add(5 * time.Minute)
		connected(t, st, &persist.Client{ID: id, Username: "u2", PeerHost: "10.0.0.2", Node: "node-b", Online: false, OfflineAt: t3})
		checkClient(t, "after node-b's disconnect", cl, id,
			&persist.Client{ID: id, Username: "u2", PeerHost: "10.0.0.2", Node: "node-b", Online: false, OnlineAt: t2, OfflineAt: t3})
	})
	t.Run("DisconnectUnknown", func(t *testing.T) {
		// The disconnect of a client never stored stores it offline, as
		// given.
		t.Parallel()
		st := s.store(t)
		cl := s.clientLookup(t, st)
		id := s.uniq("client")
		off := &persist.Client{ID: id, Username: "u", PeerHost: "10.0.0.9", Node: "node-a", Online: false, OfflineAt: time.Now().Add(-time.Minute)}
		connected(t, st, off)
		checkClient(t, "after the disconnect of an unknown client", cl, id, off)
	})
	t.Run("DisconnectWithoutStoredNode", func(t *testing.T) {
		// A client stored online with no node is taken offline by a
		// disconnect from any node.
		t.Parallel()
		st := s.store(t)
		cl := s.clientLookup(t, st)
		id := s.uniq("client")
		t1 := time.Now().Add(-time.Hour)
		t2 := t1.Add(time.Minute)
		connected(t, st,
			&persist.Client{ID: id, Username: "u", Online: true, OnlineAt: t1},
			&persist.Client{ID: id, Username: "u", Node: "node-a", Online: false, OfflineAt: t2})
		checkClient(t, "after a disconnect from node-a", cl, id,
			&persist.Client{ID: id, Username: "u", Node: "node-a", Online: false, OnlineAt: t1, OfflineAt: t2})
	})
	t.Run("DisconnectAfterMoveConcurrently", func(t *testing.T) {
		// Clients online on node a move to node b while a reports their
		// disconnects: whichever write comes first, each client ends
		// online on b. A store that looks up and then writes, apart, lets
		// a's disconnect overwrite b's connect.
		t.Parallel()
		st := s.store(t)
		cl := s.clientLookup(t, st)
		const n = 40
		ids := make([]string, n)
		t1 := time.Now().Add(-time.Hour)
		t2 := t1.Add(time.Minute)
		for i := range ids {
			ids[i] = s.uniq("client")
			connected(t, st, &persist.Client{ID: ids[i], Node: "node-a", Online: true, OnlineAt: t1})
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, id := range ids {
			calls := []*persist.Client{
				{ID: id, Node: "node-b", Online: true, OnlineAt: t2},
				{ID: id, Node: "node-a", Online: false, OfflineAt: t2},
			}
			if i%2 == 1 {
				calls[0], calls[1] = calls[1], calls[0]
			}
			for _, c := range calls {
				wg.Go(func() {
					<-start
					if err := st.Connected(t.Context(), c); err != nil {
						t.Errorf("Connected(%+v): %v", c, err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		for _, id := range ids {
			c, err := cl.Client(t.Context(), id)
			if err != nil {
				t.Errorf("Client(%q): %v", id, err)
			} else if !c.Online || c.Node != "node-b" {
				t.Errorf("Client(%q) = node %q online %v after moving to node-b; want online on node-b", id, c.Node, c.Online)
			}
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		cl := s.clientLookup(t, st)
		if err := st.Connected(t.Context(), &persist.Client{ID: "known", Node: "n", Online: true, OnlineAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"unknown", "Known", "known ", "know"} {
			c, err := cl.Client(t.Context(), id)
			if !errors.Is(err, persist.ErrNotFound) {
				t.Errorf("Client(%q) = %+v, %v; want an error matching ErrNotFound", id, c, err)
			}
		}
	})
	t.Run("AwkwardIDs", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		control := &persist.Client{ID: "control", Node: "control-node", Online: true, OnlineAt: time.Now()}
		if err := st.Connected(t.Context(), control); err != nil {
			t.Fatal(err)
		}
		base := time.Now().Add(-time.Hour)
		want := map[string]*persist.Client{}
		for i, a := range awkward {
			c := &persist.Client{ID: a.value, Username: a.value, PeerHost: "h", Node: "node-" + a.name,
				Online: i%2 == 0, OnlineAt: base.Add(time.Duration(i) * time.Minute)}
			if !c.Online {
				c.OfflineAt = c.OnlineAt.Add(time.Second)
			}
			if err := st.Connected(t.Context(), c); err != nil {
				t.Errorf("Connected(%s %q): %v", a.name, a.value, err)
			}
			want[a.value] = c
		}
		cl := s.clientLookup(t, st)
		for _, a := range awkward {
			checkClient(t, a.name, cl, a.value, want[a.value])
		}
		checkClient(t, "control client after the injection attempts", cl, "control", control)
	})
}

func checkClient(t *testing.T, what string, cl persist.ClientLookup, id string, want *persist.Client) {
	t.Helper()
	got, err := cl.Client(t.Context(), id)
	if err != nil {
		t.Errorf("%s: Client(%q): %v", what, id, err)
		return
	}
	if got == nil {
		t.Errorf("%s: Client(%q) returned nil and no error", what, id)
		return
	}
	var d []string
	if got.ID != want.ID {
		d = append(d, "ID "+quoteDiff(got.ID, want.ID))
	}
	if got.Username != want.Username {
		d = append(d, "Username "+quoteDiff(got.Username, want.Username))
	}
	if got.PeerHost != want.PeerHost {
		d = append(d, "PeerHost "+quoteDiff(got.PeerHost, want.PeerHost))
	}
	if got.Node != want.Node {
		d = append(d, "Node "+quoteDiff(got.Node, want.Node))
	}
	if got.Online != want.Online {
		d = append(d, "Online "+quoteDiff(got.Online, want.Online))
	}
	if msg := timeDiff(got.OnlineAt, want.OnlineAt); msg != "" {
		d = append(d, "OnlineAt "+msg)
	}
	if msg := timeDiff(got.OfflineAt, want.OfflineAt); msg != "" {
		d = append(d, "OfflineAt "+msg)
	}
	for _, line := range d {
		t.Errorf("%s: Client(%q): %s", what, id, line)
	}
}

// connected records each client state in turn.
func connected(t *testing.T, st persist.Store, cs ...*persist.Client) {
	t.Helper()
	for _, c := range cs {
		if err := st.Connected(t.Context(), c); err != nil {
			t.Fatalf("Connected(%+v): %v", c, err)
		}
	}
}
