package mochi

import (
	"errors"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// OnSessionEstablish starts the client's connection state, restores its
// stored subscriptions into the session mochi is about to give it (or
// removes them for a clean start) and records it online. It runs before
// mochi takes over an existing session and before the CONNACK.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || h.closed.Load() {
		return
	}
	c := newConn(h, cl)
	h.mu.Lock()
	old := h.conns[cl.ID]
	if old == nil {
		old = h.ending[cl.ID]
	}
	h.conns[cl.ID] = c
	h.mu.Unlock()
	if old != nil {
		// A takeover (or a reconnect before the old connection's
		// OnDisconnect): the old delivery records its acks and takes its
		// messages out of the old session before mochi hands the session
		// over, so they are fetched again in order rather than resent.
		old.stop()
		old.wait(h.opts.Timeout)
		c.inherit(old)
	}
	c.takeResends(pk.Connect.Clean)
	h.restore(cl, pk.Connect.Clean)
	if h.watch != nil && h.clientLookup != nil {
		// Online on another node: that node records the client's acks
		// (it hears of this connection, closes its own and says so)
		// before this connection reads the store.
		ctx, cancel := h.call(nil)
		st, err := h.clientLookup.Client(ctx, cl.ID)
		cancel()
		if err == nil && st.Online && st.Node != "" && st.Node != h.opts.Node {
			c.expectAfresh(st.Node, time.Now(), min(handoffWait, h.opts.Timeout))
		}
	}

	ctx, cancel := h.call(nil)
	err := h.store.Connected(ctx, &persist.Client{
		ID: cl.ID, Username: string(cl.Properties.Username), PeerHost: host(cl.Net.Remote),
		Node: h.opts.Node, Online: true, OnlineAt: time.Now(),
	})
	cancel()
	if err != nil {
		h.fail("Connected", cl.ID, "", err)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		c.run()
	}()
}

// restore makes the session mochi gives cl hold the client's stored
// subscriptions: it reconciles an existing offline session with the store
// or makes a placeholder session that mochi then hands over (so the CONNACK
// says the session is present, also after a restart or on another node).
// A clean start removes the stored subscriptions instead.
func (h *Hook) restore(cl *mqtt.Client, clean bool) {
	if h.subsLookup == nil {
		return
	}
	ctx, cancel := h.call(nil)
	stored, err := h.subsLookup.Subscriptions(ctx, cl.ID)
	cancel()
	if err != nil {
		if !errors.Is(err, persist.ErrUnsupported) {
			h.fail("Subscriptions", cl.ID, "", err)
		}
		return
	}
	if clean {
		if len(stored) == 0 {
			return
		}
		removed := make([]string, len(stored))
		for i, s := range stored {
			removed[i] = s.Filter
		}
		ctx, cancel := h.call(nil)
		err := h.store.Subscribed(ctx, cl.ID, nil, removed)
		cancel()
		if err != nil {
			h.fail("Subscribed", cl.ID, strings.Join(removed, " "), err)
		}
		return
	}
	want := make(map[string]packets.Subscription, len(stored))
	for _, s := range stored {
		want[s.Filter] = mochiSub(s)
	}
	existing, ok := h.server.Clients.Get(cl.ID)
	if ok && existing != cl {
		have := existing.State.Subscriptions.GetAll()
		for f, s := range want {
			if _, in := have[f]; !in {
				existing.State.Subscriptions.Add(f, s)
			}
		}
		for f := range have {
			if _, in := want[f]; !in && !h.isUnstored(cl.ID, normFilter(f)) {
				// Unsubscribed elsewhere (another node) since this node
				// last had the session.
				existing.State.Subscriptions.Delete(f)
				if h.server.Topics.Unsubscribe(f, cl.ID) {
					atomic.AddInt64(&h.server.Info.Subscriptions, -1)
				}
			}
		}
		return
	}
	if ok || len(want) == 0 {
		return
	}
	ph := h.server.NewClient(nil, cl.Net.Listener, cl.ID, false)
	ph.Properties.ProtocolVersion = cl.Properties.ProtocolVersion
	ph.Properties.Username = cl.Properties.Username
	ph.Properties.Props.SessionExpiryInterval = cl.Properties.Props.SessionExpiryInterval
	ph.Properties.Props.SessionExpiryIntervalFlag = cl.Properties.Props.SessionExpiryIntervalFlag
	ph.Stop(nil)
	for f, s := range want {
		ph.State.Subscriptions.Add(f, s)
	}
	h.server.Clients.Add(ph)
}

// OnConnect turns off mochi's own send quota for the client (see
// noSendQuota).
func (h *Hook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if h.groups && isShared(cl.ID) {
		// A shared group's position is stored as the client its shared
		// filter names (persist.Router.SharedGroups): no client may be
		// that one.
		h.log.Warn("mqttpersist: client ID refused: it names a shared group", "client", cl.ID)
		_ = h.server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	noSendQuota(cl)
	return nil
}

// noSendQuota turns off mochi's flow control of the messages it sends to
// cl, as mochi does for MQTT 3.1.1 clients. With it on, mochi's
// Inflight.NextImmediate takes a read lock twice, which deadlocks as soon
// as another goroutine (a publisher, or the Hook's delivery) waits to add
// an inflight message. The Hook keeps to the client's Receive Maximum for
// the messages it delivers.
func noSendQuota(cl *mqtt.Client) {
	if !cl.Net.Inline {
		cl.State.Inflight.ResetSendQuota(0)
	}
}

// OnSessionEstablished lets the client's delivery start: the CONNACK is
// written and mochi has resent what its session held.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	noSendQuota(cl) // again: taking over a session resets it
	if c := h.connFor(cl); c != nil {
		c.start()
	}
}

// OnDisconnect ends the client's delivery (recording the acks it got and
// taking its unacknowledged messages out of the session, to be fetched
// again on the next connection) and records the client offline.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline {
		return
	}
	h.mu.Lock()
	c := h.conns[cl.ID]
	current := c != nil && c.cl == cl
	if current {
		delete(h.conns, cl.ID)
		h.ending[cl.ID] = c // a reconnect waits for it
	}
	h.mu.Unlock()
	if !current {
		return // taken over: the new connection owns the client's state
	}
	c.endsSession.Store(expire)
	c.stop()
	c.wait(h.opts.Timeout)
	// The disconnect written below tells the node the client goes to next
	// that its acks are recorded: those of the nodes before this one too,
	// if this connection still waits for them (see handoff).
	c.awaitHandoff(h.base.Done())
	h.mu.Lock()
	if h.ending[cl.ID] == c {
		delete(h.ending, cl.ID)
	}
	// The client came back to this node while this connection ended:
	// the new connection owns its state, which a late disconnect of the
	// old one must not mark offline (the node the client moves to next
	// would then not wait for this one's acks), also when it has ended
	// already (it wrote its own disconnect).
	newer := h.conns[cl.ID] != nil || c.superseded()
	h.mu.Unlock()
	if newer || h.closed.Load() && h.base.Err() != nil {
		return
	}
	// Written also when the client is online on another node already (it
	// moved faster than this node noticed it was gone): the store leaves
	// it online there, and tells that node that this one has recorded the
	// client's acks (a client's notice with Offline).
	ctx, cancel := h.call(nil)
	err := h.store.Connected(ctx, &persist.Client{
		ID: cl.ID, Username: string(cl.Properties.Username), PeerHost: host(cl.Net.Remote),
		Node: h.opts.Node, Online: false, OfflineAt: time.Now(),
	})
	cancel()
	if err != nil {
		h.fail("Connected", cl.ID, "", err)
	}
}

// OnClientExpired removes an expired session's stored subscriptions,
// unless the client has moved to another node meanwhile.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.dropResends(cl.ID)
	subs := cl.State.Subscriptions.GetAll()
	if len(subs) == 0 {
		return
	}
	if h.clientLookup != nil {
		ctx, cancel := h.call(nil)
		st, err := h.clientLookup.Client(ctx, cl.ID)
		cancel()
		if err == nil && (st.Online || st.Node != h.opts.Node) {
			return
		}
	}
	removed := make([]string, 0, len(subs))
	for f := range subs {
		removed = append(removed, normFilter(f))
	}
	sort.Strings(removed)
	h.removeSubs(cl.ID, removed)
}
