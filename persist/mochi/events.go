package mochi

import (
	"context"
	"errors"
	"math/rand/v2"
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
	}
	h.restore(cl, pk.Connect.Clean)

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
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
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
	c.stop()
	c.wait(h.opts.Timeout)
	h.mu.Lock()
	if h.ending[cl.ID] == c {
		delete(h.ending, cl.ID)
	}
	h.mu.Unlock()
	if h.closed.Load() && h.base.Err() != nil {
		return
	}
	if h.clientLookup != nil {
		// Another node may have the client already (it moved faster than
		// this node noticed it was gone).
		ctx, cancel := h.call(nil)
		st, err := h.clientLookup.Client(ctx, cl.ID)
		cancel()
		if err == nil && st.Online && st.Node != h.opts.Node {
			return
		}
	}
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

// OnSubscribe refreshes the broker's retained messages for each filter
// from the store before mochi sends them to the subscriber, so retained
// messages set or deleted on other nodes (or before a restart) are seen.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if c := h.connFor(cl); c != nil && !cl.Net.Inline {
		// mochi adds the subscriptions to the session before OnSubscribed
		// stores them: until then the delivery must not fetch for them (a
		// fetch for a filter with no stored subscription has no start and
		// would replay the topic's whole history to a new subscriber).
		c.storing(pk.Filters, true)
	}
	if h.opts.NoRetainSync || h.retainLookup == nil || h.closed.Load() ||
		h.server.Options.Capabilities.RetainAvailable == 0 {
		return pk
	}
	for _, sub := range pk.Filters {
		if sub.RetainHandling == 2 || isShared(normFilter(sub.Filter)) || !mqtt.IsValidFilter(sub.Filter, false) {
			continue
		}
		ctx, cancel := h.call(nil)
		msgs, err := h.retainLookup.Retained(ctx, sub.Filter)
		cancel()
		if err != nil {
			h.fail("Retained", cl.ID, sub.Filter, err)
			continue
		}
		h.syncRetained(sub.Filter, msgs)
	}
	return pk
}

// syncRetained makes mochi's retained messages matching filter those of
// the store, keeping mochi's where they are newer (a write in flight).
func (h *Hook) syncRetained(filter string, msgs []*persist.Message) {
	now := time.Now()
	in := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		if m == nil || len(m.Payload) == 0 || m.Expired(now) {
			continue
		}
		in[m.Topic] = true
		cur, ok := h.server.Topics.Retained.Get(m.Topic)
		if ok && (cur.Created > m.Time.Unix() || (cur.Created == m.Time.Unix() && (cur.Expiry != 0 || m.Expiry.IsZero()))) {
			continue
		}
		h.server.Topics.RetainMessage(retainedPacket(m))
	}
	stale := now.Add(-2 * h.opts.Timeout).Unix()
	for _, cur := range h.server.Topics.Messages(filter) {
		if in[cur.TopicName] || strings.HasPrefix(cur.TopicName, "$") || cur.Created > stale {
			continue
		}
		// Deleted in the store (on another node): delete here too.
		h.server.Topics.RetainMessage(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName:   cur.TopicName,
		})
	}
	atomic.StoreInt64(&h.server.Info.Retained, int64(h.server.Topics.Retained.Len()))
}

// OnSubscribed stores the subscriptions mochi granted and has the client's
// delivery fetch what the store holds for them (queued messages, and for
// fanout what was published since the subscription was stored).
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Inline || h.closed.Load() {
		return
	}
	maxQoS := h.server.Options.Capabilities.MaximumQos
	var subs []persist.Subscription
	for i, s := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < packets.ErrUnspecifiedError.Code {
			subs = append(subs, subscription(s, maxQoS))
		}
	}
	c := h.connFor(cl)
	if c != nil {
		defer c.storing(pk.Filters, false) // and kick: fetch for them now
	}
	if len(subs) == 0 {
		return
	}
	ctx, cancel := h.call(nil)
	err := h.store.Subscribed(ctx, cl.ID, subs, nil)
	cancel()
	if err != nil && len(subs) > 1 && errors.Is(err, persist.ErrInvalid) {
		// One filter the store cannot take rejects them all: store the
		// others one by one.
		for _, s := range subs {
			ctx, cancel := h.call(nil)
			err := h.store.Subscribed(ctx, cl.ID, []persist.Subscription{s}, nil)
			cancel()
			if err != nil {
				h.fail("Subscribed", cl.ID, s.Filter, err)
			}
			h.setUnstored(cl.ID, s.Filter, err != nil)
		}
	} else {
		if err != nil {
			h.fail("Subscribed", cl.ID, subs[0].Filter, err)
		}
		for _, s := range subs {
			h.setUnstored(cl.ID, s.Filter, err != nil)
		}
	}
}

// OnUnsubscribed removes the subscriptions from the store (mochi also
// calls it when a session ends: clean start, or expiry at disconnect).
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || h.closed.Load() || len(pk.Filters) == 0 {
		return
	}
	removed := make([]string, len(pk.Filters))
	for i, s := range pk.Filters {
		removed[i] = normFilter(s.Filter)
		h.setUnstored(cl.ID, removed[i], false)
	}
	h.removeSubs(cl.ID, removed)
}

// OnPublish stores the message (before mochi acknowledges it to the
// publisher). A message the store can deliver later is tagged and marked
// for mochi to ignore: the Hook routes it itself in OnPublished, so one
// path — live or from the store — delivers each persisted message.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	pk.Connect.ClientIdentifier = "" // only the Hook tags
	if h.closed.Load() || pk.FixedHeader.Type != packets.Publish || pk.Ignore {
		return pk, nil
	}
	mode, ok := h.fetchable(pk.TopicName, pk.FixedHeader.Qos)
	if !ok {
		if _, router := h.store.(*persist.Router); !router && pk.FixedHeader.Qos == 0 && !h.opts.QoS0 {
			return pk, nil
		}
	}
	now := time.Now()
	m := h.message(cl, &pk, now)
	err := h.publish(m)
	if err == nil && pk.FixedHeader.Retain && ok {
		ctx, cancel := h.call(nil)
		h.retain(ctx, cl, m)
		cancel()
	}
	if err != nil {
		h.fail("Publish", cl.ID, pk.TopicName, err)
		if pk.FixedHeader.Qos == 0 || h.opts.Fallback || errors.Is(err, persist.ErrInvalid) {
			return pk, nil // mochi delivers it as usual, from memory
		}
		if pk.FixedHeader.Qos == 1 && cl.Properties.ProtocolVersion == 5 {
			return pk, packets.ErrUnspecifiedError // a PUBACK saying so
		}
		return pk, packets.ErrRejectPacket // no acknowledgement: the client sends it again
	}
	if ok {
		h.stored.Add(1)
		pk.Connect.ClientIdentifier = tag{kind: kindLive, mode: mode, id: m.ID}.String()
		pk.Ignore = true
	}
	return pk, nil
}

// retain stores m as the retained message of its topic (an empty payload
// deletes it).
func (h *Hook) retain(ctx context.Context, cl *mqtt.Client, m *persist.Message) {
	r := *m
	r.Retain = true
	if err := h.store.Retain(ctx, &r); err != nil {
		h.fail("Retain", cl.ID, m.Topic, err)
	}
}

// OnRetainMessage stores a retained message mochi kept (one the Hook did
// not tag, such as a will).
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if h.closed.Load() {
		return
	}
	if _, ok := parseTag(pk.Connect.ClientIdentifier); ok {
		return
	}
	m := h.message(cl, &pk, time.Now())
	m.Retain = true
	ctx, cancel := h.call(nil)
	err := h.store.Retain(ctx, m)
	cancel()
	if err != nil {
		h.fail("Retain", cl.ID, pk.TopicName, err)
	}
}

// OnPublished delivers a tagged message (which mochi ignored): it keeps it
// as retained when asked and hands it to each connected subscriber's
// delivery. Offline subscribers get it from the store when they connect.
func (h *Hook) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	t, ok := parseTag(pk.Connect.ClientIdentifier)
	if !ok || t.kind != kindLive {
		return
	}
	if pk.FixedHeader.Retain && h.server.Options.Capabilities.RetainAvailable != 0 {
		r := pk.Copy(false)
		r.Connect.ClientIdentifier = ""
		r.Ignore = false
		h.server.Topics.RetainMessage(r)
		atomic.StoreInt64(&h.server.Info.Retained, int64(h.server.Topics.Retained.Len()))
	}
	h.route(pk, t)
}

// route hands a tagged message to the connected subscribers, as mochi's
// publishToSubscribers would send it.
func (h *Hook) route(pk packets.Packet, t tag) {
	pk.Ignore = false
	if pk.Created == 0 {
		pk.Created = time.Now().Unix()
	}
	subs := h.server.Topics.Subscribers(pk.TopicName)
	// One member of each shared group, preferring a connected one.
	for _, members := range subs.Shared {
		ids := make([]string, 0, len(members))
		for id := range members {
			ids = append(ids, id)
		}
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		pick := ids[0]
		for _, id := range ids {
			if cl, ok := h.server.Clients.Get(id); ok && !cl.Closed() {
				pick = id
				break
			}
		}
		sub := members[pick]
		if cur, ok := subs.Subscriptions[pick]; ok {
			sub = cur.Merge(sub)
		}
		subs.Subscriptions[pick] = sub
	}
	if len(subs.InlineSubscriptions) > 0 && h.inline != nil {
		in := pk.Copy(false)
		in.Connect.ClientIdentifier = ""
		for _, s := range subs.InlineSubscriptions {
			s.Handler(h.inline, s.Subscription, in)
		}
	}
	maxQoS := h.server.Options.Capabilities.MaximumQos
	for id, sub := range subs.Subscriptions {
		if sub.NoLocal && pk.Origin == id {
			continue // [MQTT-3.8.3-3]
		}
		cl, ok := h.server.Clients.Get(id)
		if !ok || cl.Closed() {
			continue // offline: the store delivers it on the next connection
		}
		c := h.connFor(cl)
		if c == nil {
			continue
		}
		if t.mode == persist.Queue {
			c.kick() // consumers claim queue messages from the store
			continue
		}
		if !h.canRead(cl, pk.TopicName) {
			continue
		}
		out := pk.Copy(false)
		out.Connect.ClientIdentifier = ""
		if cl.Properties.ProtocolVersion < 5 || !sub.RetainAsPublished {
			out.FixedHeader.Retain = false // [MQTT-3.3.1-12]
		}
		var ids []int
		for _, v := range sub.Identifiers {
			if v > 0 {
				ids = append(ids, v)
			}
		}
		if len(ids) == 0 && sub.Identifier > 0 {
			ids = append(ids, sub.Identifier)
		}
		sort.Ints(ids)
		out.Properties.SubscriptionIdentifier = ids // [MQTT-3.3.4-3]
		out.FixedHeader.Qos = min(out.FixedHeader.Qos, sub.Qos, maxQoS)
		c.push(&item{pk: out, id: t.id, mode: t.mode})
	}
}

// OnQosPublish recognises, among the messages mochi resends to a client
// that took over a session, deliveries the Hook made on the old connection:
// the new connection tracks their acks.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if !pk.FixedHeader.Dup || pk.FixedHeader.Type != packets.Publish {
		return
	}
	t, ok := parseTag(pk.Connect.ClientIdentifier)
	if !ok {
		return
	}
	if c := h.connFor(cl); c != nil {
		c.resent(pk.PacketID, &entry{id: t.id, topic: pk.TopicName, mode: t.mode})
	}
}

// OnPacketEncode keeps the user properties of PUBLISH packets to clients
// that set Request Problem Information to 0: the rule only covers other
// packets [MQTT-3.1.2-29], and mochi would drop them.
func (h *Hook) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish {
		pk.Mods.DisallowProblemInfo = false
	}
	return pk
}

// OnPacketProcessed passes the client's PUBACK and PUBREC packets to its
// delivery (without waiting for the store: acks are recorded off the
// client's read path).
func (h *Hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec:
	default:
		return
	}
	if c := h.connFor(cl); c != nil {
		c.acked(pk.PacketID)
	}
}

// removeSubs removes a client's stored subscriptions to filters; when the
// store refuses the batch as invalid, each filter is tried on its own (as in
// OnSubscribed) so one bad filter does not keep the others.
func (h *Hook) removeSubs(clientID string, filters []string) {
	ctx, cancel := h.call(nil)
	err := h.store.Subscribed(ctx, clientID, nil, filters)
	cancel()
	if err != nil && len(filters) > 1 && errors.Is(err, persist.ErrInvalid) {
		for _, f := range filters {
			ctx, cancel := h.call(nil)
			if err := h.store.Subscribed(ctx, clientID, nil, []string{f}); err != nil {
				h.fail("Subscribed", clientID, f, err)
			}
			cancel()
		}
	} else if err != nil {
		h.fail("Subscribed", clientID, strings.Join(filters, " "), err)
	}
}
