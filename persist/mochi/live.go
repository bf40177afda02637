package mochi

import (
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// item is a live message waiting in memory for its client.
type item struct {
	pk   packets.Packet
	id   string
	mode persist.Mode
	seq  uint64 // the order of its push among the conn's
}

// fetchGrace × Options.Buffer is the most a client's memory holds while
// its delivery replays the store (see push).
const fetchGrace = 4

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
	if h.groups && t.mode == persist.Fanout {
		// The store gives each group's messages to one member, whichever
		// node it is on: a connected member here claims it (the others'
		// nodes hear of it from their watches).
		h.kickGroups(subs.Shared)
		subs.Shared = nil
	}
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

// kickGroups makes one connected member of each group fetch from the
// store.
func (h *Hook) kickGroups(groups map[string]map[string]packets.Subscription) {
	if len(groups) == 0 {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, members := range groups {
		var conns []*conn
		for id := range members {
			if c := h.conns[id]; c != nil {
				conns = append(conns, c)
			}
		}
		if len(conns) > 0 {
			conns[rand.IntN(len(conns))].kick()
		}
	}
}

// push queues a live message. When memory is full, it first drops the
// messages the latest fetch covers — those pushed before it began, which
// the store had by then (the fetch waits for an async outbox to write what
// it holds): the fetch returned them, or it was not the last one. If that
// is not enough, the older half of the messages the store can deliver are
// dropped from it and the delivery goes back to the store. The newer half
// stays: a fetch that follows returns the dropped ones if they were
// written before it (an async outbox writes them a moment after they come
// here), so that the delivery can go live again after it (see
// conn.settled) even while the stream goes on. Memory is full at
// Options.Buffer, or at fetchGrace times that while the delivery replays
// the store and until memory has drained under Buffer after it: what the
// stream brings while a fetch runs after the fetch's read is what the
// delivery sends live after the replay, and a fetch that takes longer
// than the stream needs to fill Buffer would else end with a spill every
// time, and the delivery never go live again.
func (c *conn) push(it *item) {
	c.mu.Lock()
	it.seq = c.pushed
	c.pushed++
	if len(c.mem) >= c.h.opts.Buffer {
		c.dropCovered()
	}
	full := c.h.opts.Buffer
	if c.grace {
		full *= fetchGrace
	}
	if len(c.mem) >= full {
		subs := c.cl.State.Subscriptions.GetAll()
		n := c.spill(subs, max(full/2, 1), func(*item) bool { return true })
		if n == 0 && coveredBy(subs, it) {
			c.noteSpill(it.id)
			c.spilledSome(1)
			it = nil
		}
	}
	if it != nil {
		c.mem = append(c.mem, it)
	}
	c.mu.Unlock()
	c.signal()
}

// spill drops from memory up to limit of the messages that which selects
// and the store can deliver (a stored subscription matches them), oldest
// first, and sends the delivery back to the store; it returns how many it
// dropped. c.mu is held.
func (c *conn) spill(subs map[string]packets.Subscription, limit int, which func(*item) bool) int {
	keep := c.mem[:0]
	n := 0
	for _, x := range c.mem {
		if n < limit && which(x) && coveredBy(subs, x) {
			n++
			c.noteSpill(x.id)
		} else {
			keep = append(keep, x)
		}
	}
	clear(c.mem[len(keep):])
	c.mem = keep
	c.spilledSome(n)
	return n
}

// dropCovered drops from memory the messages that the latest fetch covers
// (see push), without a kick. Memory is in the order of push, so those
// are at its front. c.mu is held.
func (c *conn) dropCovered() {
	n := 0
	for n < len(c.mem) && c.mem[n].seq < c.covers {
		n++
	}
	if n == 0 {
		return
	}
	subs := c.cl.State.Subscriptions.GetAll()
	keep := c.mem[:0]
	for _, x := range c.mem[:n] {
		if !coveredBy(subs, x) {
			keep = append(keep, x)
		}
	}
	keep = append(keep, c.mem[n:]...)
	clear(c.mem[len(keep):])
	c.mem = keep
}

// spilledSome counts n messages spilled, as one kick. c.mu is held.
func (c *conn) spilledSome(n int) {
	if n > 0 {
		c.kicks++
		c.spills++
		c.h.spilled.Add(uint64(n))
	}
}

// spillEarly spills the messages in memory published before the store was
// first read (see sendMem) that the store has not delivered. c.mu is held.
func (c *conn) spillEarly() {
	c.spill(c.cl.State.Subscriptions.GetAll(), len(c.mem), func(x *item) bool {
		_, ok := c.known[x.id]
		return !ok && x.id < c.mark
	})
}

// covered reports whether the store can deliver it to the client.
func (c *conn) covered(it *item) bool {
	return coveredBy(c.cl.State.Subscriptions.GetAll(), it)
}

// coveredBy reports whether one of subs, stored, matches its topic.
func coveredBy(subs map[string]packets.Subscription, it *item) bool {
	_, ok := matchSubs(subs, it.pk.TopicName, false)
	return ok
}

// noteSpill notes the ID of a message dropped from memory while a fetch
// runs (see conn.settled); c.mu is held.
func (c *conn) noteSpill(id string) {
	if c.spilled == nil {
		return
	}
	if len(c.spilled) >= maxSpilledIDs {
		c.spillLost = true
		return
	}
	c.spilled[id] = struct{}{}
}

// sendMem sends live messages from memory while the client has room,
// written together (see batch).
func (c *conn) sendMem() bool {
	defer c.batch()()
	sent := false
	for c.ctx.Err() == nil && c.room() > 0 {
		c.mu.Lock()
		if c.kicks != c.seenKicks {
			// Messages were spilled (or a subscription or queue message
			// came) since the store was last read: memory may now hold
			// messages newer than spilled ones of the same topic, which
			// the store must deliver first, in order. Back to intake,
			// which turns to the store.
			c.mu.Unlock()
			return true
		}
		if len(c.mem) < c.h.opts.Buffer {
			c.grace = false // drained after the replay
		}
		if len(c.mem) == 0 {
			c.mu.Unlock()
			return sent
		}
		it := c.mem[0]
		if _, ok := c.known[it.id]; it.id < c.mark && !ok && c.covered(it) {
			// Published before the store was first read: the read
			// delivered it, or found it acknowledged on the client's
			// connection before, perhaps on another node — its live copy
			// can come that late when this node's write of it returned
			// late. The store decides.
			c.spillEarly()
			c.mu.Unlock()
			return true
		}
		c.mem[0] = nil
		c.mem = c.mem[1:]
		c.mu.Unlock()
		sent = true
		if _, ok := c.known[it.id]; ok {
			continue // the store delivered it already
		}
		if it.pk.Expiry > 0 && it.pk.Expiry < time.Now().Unix() {
			continue
		}
		if c.send(it.pk, &entry{id: it.id, topic: it.pk.TopicName, mode: it.mode}) {
			c.h.live.Add(1)
		}
	}
	return sent
}
