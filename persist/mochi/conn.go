package mochi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// entry is one delivery of a stored message to a client.
type entry struct {
	id    string
	topic string
	mode  persist.Mode
	// stored is set when the store delivered it: its ID is remembered
	// for a while after the ack, in case its live copy comes late.
	stored bool
}

// item is a live message waiting in memory for its client.
type item struct {
	pk   packets.Packet
	id   string
	mode persist.Mode
}

// event is an ack of a packet ID (e nil) or a resend by mochi of a delivery
// made on an earlier connection.
type event struct {
	pid uint16
	e   *entry
}

// settle is how long a delivered message's ID is remembered after its ack
// was recorded, to recognise a live copy routed after the store already
// delivered it.
const settle = 30 * time.Second

// Acks are recorded in batches: when ackBatch are ready, when the oldest
// ready one waited ackDelay, before every fetch and at the end.
const (
	ackBatch = 256
	ackDelay = 20 * time.Millisecond
)

// maxUnsent bounds the acks kept for another try while the store fails;
// older ones are given up (those messages are delivered again later).
const maxUnsent = 100_000

// conn is the delivery of persisted messages to one connection of a
// client. Its run goroutine is the only sender of persisted messages to the
// client: it replays the store (paged, in ID order) until nothing is left,
// then sends live messages from memory, falling back to the store whenever
// memory overflows, a subscription is added or queue messages arrive. It
// records the client's acks in the store, never moving a fanout cursor past
// a delivery that is still unacknowledged.
type conn struct {
	h  *Hook
	cl *mqtt.Client
	id string

	ctx       context.Context
	cancel    context.CancelFunc
	started   chan struct{}
	done      chan struct{}
	startOnce sync.Once
	wake      chan struct{}

	mu     sync.Mutex
	mem    []*item
	events []event
	kicks  uint64
	unsure map[string]bool // filters subscribed to but not stored yet: not fetched

	// Owned by run.
	window     int
	db         bool // replaying the store; else sending from memory
	caughtUp   bool // the backlog is all the store holds: live after it
	seenKicks  uint64
	pending    map[uint16]*entry   // sent, waiting for PUBACK/PUBREC
	open       map[string][]string // topic → IDs of pending fanout deliveries
	ready      []*entry            // acknowledged, to record
	readySince time.Time           // when ready became non-empty
	held       []*entry            // acknowledged after a later delivery of an unacknowledged earlier one
	unsent     []*entry            // recording failed, to try again
	known      map[string]int64    // ID → 0 while in flight, else when its ack was recorded
	backlog    []*persist.Message
	fetchedAt  time.Time // of the backlog
	subs       map[string]packets.Subscription
	retryAt    time.Time
	backoff    time.Duration
	ackRetryAt time.Time
	pruned     time.Time
	pid        uint32           // the last packet ID given to a delivery
	bad        map[string]error // filters the store rejects
}

// permanent reports whether trying a store call again cannot help.
func permanent(err error) bool {
	return errors.Is(err, persist.ErrInvalid) || errors.Is(err, persist.ErrUnsupported)
}

func newConn(h *Hook, cl *mqtt.Client) *conn {
	c := &conn{
		h: h, cl: cl, id: cl.ID,
		started: make(chan struct{}),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		pending: map[uint16]*entry{},
		open:    map[string][]string{},
		known:   map[string]int64{},
		bad:     map[string]error{},
	}
	c.ctx, c.cancel = context.WithCancel(h.base)
	return c
}

func (c *conn) start() { c.startOnce.Do(func() { close(c.started) }) }
func (c *conn) stop()  { c.cancel() }

// wait waits up to d for the delivery to end.
func (c *conn) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.h.log.Warn("mqttpersist: delivery did not end in time", "client", c.id, "timeout", d)
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// kick makes the delivery fetch from the store again.
func (c *conn) kick() {
	c.mu.Lock()
	c.kicks++
	c.mu.Unlock()
	c.signal()
}

func (c *conn) kickCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kicks
}

// storing marks the filters of a SUBSCRIBE as being stored (on) or
// stored (off, which also kicks the delivery to fetch for them).
func (c *conn) storing(subs []packets.Subscription, on bool) {
	c.mu.Lock()
	if c.unsure == nil {
		c.unsure = map[string]bool{}
	}
	for _, s := range subs {
		if on {
			c.unsure[normFilter(s.Filter)] = true
		} else {
			delete(c.unsure, normFilter(s.Filter))
		}
	}
	c.mu.Unlock()
	if !on {
		c.kick()
	}
}

// acked passes on the client's PUBACK or PUBREC of packet pid.
func (c *conn) acked(pid uint16) {
	c.mu.Lock()
	c.events = append(c.events, event{pid: pid})
	c.mu.Unlock()
	c.signal()
}

// resent records that mochi resent delivery e as packet pid.
func (c *conn) resent(pid uint16, e *entry) {
	c.mu.Lock()
	c.events = append(c.events, event{pid: pid, e: e})
	c.mu.Unlock()
	c.signal()
}

// push queues a live message. When memory is full, the messages the store
// can deliver are dropped from it and the delivery goes back to the store.
func (c *conn) push(it *item) {
	c.mu.Lock()
	if len(c.mem) >= c.h.opts.Buffer {
		subs := c.cl.State.Subscriptions.GetAll()
		covered := func(x *item) bool {
			_, ok := matchSubs(subs, x.pk.TopicName, false)
			return ok
		}
		keep := c.mem[:0]
		var spilled uint64
		for _, x := range c.mem {
			if covered(x) {
				spilled++
			} else {
				keep = append(keep, x)
			}
		}
		clear(c.mem[len(keep):])
		c.mem = keep
		if covered(it) {
			spilled++
			it = nil
		}
		if spilled > 0 {
			c.kicks++
			c.h.spilled.Add(spilled)
		}
	}
	if it != nil {
		c.mem = append(c.mem, it)
	}
	c.mu.Unlock()
	c.signal()
}

func (c *conn) run() {
	defer close(c.done)
	defer c.finish()
	select {
	case <-c.started:
	case <-c.ctx.Done():
		return
	}
	c.window = c.h.opts.Window
	if c.cl.Properties.ProtocolVersion == 5 {
		if rm := int(c.cl.Properties.Props.ReceiveMaximum); rm > 0 {
			c.window = min(c.window, rm)
		}
	}
	if mi := int(c.h.server.Options.Capabilities.MaximumInflight) / 2; mi > 0 {
		c.window = min(c.window, mi)
	}
	c.db = true
	c.seenKicks = c.kickCount()
	for c.ctx.Err() == nil {
		c.intake()
		c.record(false, false)
		if c.ctx.Err() != nil {
			return
		}
		if !c.step() {
			c.sleep()
		}
	}
}

// intake applies the queued acks and resends.
func (c *conn) intake() {
	c.mu.Lock()
	evs := c.events
	c.events = nil
	kicks := c.kicks
	c.mu.Unlock()
	for _, ev := range evs {
		if ev.e != nil {
			if old, ok := c.pending[ev.pid]; ok {
				c.delOpen(old)
			}
			c.pending[ev.pid] = ev.e
			c.known[ev.e.id] = 0
			c.addOpen(ev.e)
			continue
		}
		e, ok := c.pending[ev.pid]
		if !ok {
			continue // an ack of a message the Hook did not send
		}
		delete(c.pending, ev.pid)
		c.delOpen(e)
		c.finished(e)
	}
	if kicks != c.seenKicks {
		c.seenKicks = kicks
		c.db = true
		c.caughtUp = false
	}
	if now := time.Now(); len(c.known) > 4096 && now.Sub(c.pruned) > time.Second {
		c.pruned = now
		old := now.Add(-settle).UnixNano()
		for id, at := range c.known {
			if at != 0 && at < old {
				delete(c.known, id)
			}
		}
	}
}

// finished queues e's ack for recording.
func (c *conn) finished(e *entry) {
	if len(c.ready) == 0 {
		c.readySince = time.Now()
	}
	c.ready = append(c.ready, e)
}

func (c *conn) addOpen(e *entry) {
	if e.mode == persist.Fanout {
		c.open[e.topic] = append(c.open[e.topic], e.id)
	}
}

func (c *conn) delOpen(e *entry) {
	if e.mode != persist.Fanout {
		return
	}
	ids := c.open[e.topic]
	if i := slices.Index(ids, e.id); i >= 0 {
		ids = slices.Delete(ids, i, i+1)
	}
	if len(ids) == 0 {
		delete(c.open, e.topic)
	} else {
		c.open[e.topic] = ids
	}
}

// blocked reports whether recording e would move the client's cursor for
// its topic past a delivery that is not acknowledged yet.
func (c *conn) blocked(e *entry) bool {
	if e.mode != persist.Fanout {
		return false
	}
	for _, id := range c.open[e.topic] {
		if id < e.id {
			return true
		}
	}
	return false
}

// record sends the acks that may be recorded to the store, in one call:
// when forced, or when enough of them waited (see ackBatch).
func (c *conn) record(force, final bool) {
	if len(c.ready) == 0 && len(c.unsent) == 0 && len(c.held) == 0 {
		return
	}
	if !force && len(c.unsent) == 0 && len(c.ready) < ackBatch && time.Since(c.readySince) < ackDelay {
		return
	}
	if len(c.held) > 0 {
		keep := c.held[:0]
		for _, e := range c.held {
			if c.blocked(e) {
				keep = append(keep, e)
			} else {
				c.ready = append(c.ready, e)
			}
		}
		clear(c.held[len(keep):])
		c.held = keep
	}
	var batch []*entry
	for _, e := range c.ready {
		if c.blocked(e) {
			c.held = append(c.held, e)
		} else {
			batch = append(batch, e)
		}
	}
	clear(c.ready)
	c.ready = c.ready[:0]
	if len(c.unsent) > 0 {
		if !final && !force && time.Now().Before(c.ackRetryAt) {
			c.unsent = append(c.unsent, batch...)
			return
		}
		batch = append(c.unsent, batch...)
		c.unsent = nil
	}
	if len(batch) == 0 {
		return
	}
	acks := make([]persist.Ack, len(batch))
	for i, e := range batch {
		acks[i] = persist.Ack{ID: e.id, Topic: e.topic}
	}
	parent := c.ctx
	if final {
		parent = c.h.base
	}
	ctx, cancel := c.h.call(parent)
	err := c.h.store.Acked(ctx, c.id, acks...)
	cancel()
	if err != nil && permanent(err) {
		// One bad ack (a topic the store cannot take) fails the batch:
		// record them one by one and give up only the bad ones (their
		// messages may come again).
		var kept []*entry
		for i, a := range acks {
			ctx, cancel := c.h.call(parent)
			e1 := c.h.store.Acked(ctx, c.id, a)
			cancel()
			if e1 == nil || permanent(e1) {
				if e1 != nil {
					c.h.fail("Acked", c.id, a.Topic, e1)
				}
				kept = append(kept, batch[i])
				continue
			}
			err = e1
			batch = batch[i:]
			break
		}
		c.forget(kept)
		if err == nil || permanent(err) {
			return
		}
	}
	if err != nil {
		if !final && c.ctx.Err() != nil {
			c.unsent = batch // stopping: the final record tries again
			return
		}
		c.h.fail("Acked", c.id, batch[0].topic, err)
		if len(batch) > maxUnsent {
			for _, e := range batch[:len(batch)-maxUnsent] {
				delete(c.known, e.id)
			}
			batch = batch[len(batch)-maxUnsent:]
		}
		c.unsent = batch
		c.ackRetryAt = time.Now().Add(time.Second)
		return
	}
	c.forget(batch)
}

// forget marks the entries recorded.
func (c *conn) forget(batch []*entry) {
	now := time.Now().UnixNano()
	for _, e := range batch {
		if e.stored {
			c.known[e.id] = now
		} else {
			delete(c.known, e.id)
		}
	}
	c.h.acked.Add(uint64(len(batch)))
}

// step sends what it can; it returns false when it has to wait.
func (c *conn) step() bool {
	if !c.db {
		return c.sendMem()
	}
	if len(c.backlog) == 0 {
		if time.Now().Before(c.retryAt) {
			return false
		}
		c.record(true, false) // the store moves the cursors before the fetch
		k := c.kickCount()
		msgs, full, err := c.fetch()
		// Caught up: the store gave everything it holds for the client
		// and no message was spilled meanwhile, so what it publishes from
		// now on is in memory: after this backlog, live.
		c.caughtUp = err == nil && !full && c.kickCount() == k
		c.backlog = msgs
		c.fetchedAt = time.Now()
		if err != nil {
			c.backoff = min(max(2*c.backoff, 100*time.Millisecond), 10*time.Second)
			c.retryAt = time.Now().Add(c.backoff)
		} else {
			c.backoff = 0
		}
		if len(msgs) == 0 {
			if err != nil {
				return false
			}
			if c.caughtUp {
				c.db = false // the store holds nothing more: live from now on
			}
			return true
		}
	}
	sent := c.sendBacklog()
	if len(c.backlog) == 0 && c.caughtUp {
		// Not another fetch, which under a steady stream would always find
		// the messages just published (they are in memory too) and never
		// let the delivery go live again.
		c.db = false
	}
	return sent
}

// fetch returns the stored messages for the client's subscriptions that
// it was not sent yet, in ID order: at most a window more than it has in
// flight, for each subscription; full reports that a subscription's fetch
// reached that limit (the store may hold more).
func (c *conn) fetch() (out []*persist.Message, full bool, _ error) {
	c.subs = c.cl.State.Subscriptions.GetAll()
	if len(c.subs) == 0 {
		return nil, false, nil
	}
	filters := make([]string, 0, len(c.subs))
	c.mu.Lock()
	for f := range c.subs {
		if f = normFilter(f); !c.unsure[f] {
			filters = append(filters, f)
		}
	}
	c.mu.Unlock()
	// A filter not (yet) stored has no start in the store (a fetch would
	// replay the topic's history); mochi delivers its messages live.
	filters = slices.DeleteFunc(filters, func(f string) bool { return c.h.isUnstored(c.id, f) })
	slices.Sort(filters)
	opt := persist.Fetch{
		Limit: max(c.window, c.h.opts.Page) + len(c.pending) + len(c.held) + len(c.unsent),
		Since: c.h.opts.Fetch.Since,
		Lease: c.h.opts.Fetch.Lease,
	}
	var errs []error
	seen := map[string]bool{}
	for _, f := range filters {
		ctx, cancel := c.h.call(c.ctx)
		msgs, err := c.h.store.FetchOffline(ctx, c.id, f, opt)
		cancel()
		full = full || len(msgs) >= opt.Limit
		if err != nil {
			if c.ctx.Err() != nil {
				return out, full, err
			}
			if permanent(err) {
				// The store cannot take this client or filter (too long,
				// say): nothing to replay for it, and no use trying again.
				if c.bad[f] == nil {
					c.bad[f] = err
					c.h.fail("FetchOffline", c.id, f, err)
				}
			} else {
				c.h.fail("FetchOffline", c.id, f, err)
				errs = append(errs, err)
			}
		}
		shared := isShared(f)
		for _, m := range msgs {
			if m == nil || seen[m.ID] || (shared && m.Mode != persist.Queue) {
				continue // a shared group has no fanout cursor to replay
			}
			seen[m.ID] = true
			if _, ok := c.known[m.ID]; !ok {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	return out, full, errors.Join(errs...)
}

// room is how many more QoS 1 and 2 messages the client may have in flight.
func (c *conn) room() int {
	n := c.window - len(c.pending)
	inflight := c.cl.State.Inflight.Len()
	if c.cl.Properties.ProtocolVersion == 5 {
		if rm := int(c.cl.Properties.Props.ReceiveMaximum); rm > 0 {
			n = min(n, rm-inflight)
		}
	}
	return min(n, int(c.h.server.Options.Capabilities.MaximumInflight)-16-inflight)
}

func (c *conn) sendBacklog() bool {
	sent := false
	for len(c.backlog) > 0 && c.ctx.Err() == nil {
		if c.room() <= 0 {
			return sent
		}
		m := c.backlog[0]
		c.backlog[0] = nil
		c.backlog = c.backlog[1:]
		c.deliverStored(m)
		sent = true
	}
	return true
}

// deliverStored sends a message from the store as the client's matching
// subscriptions ask.
func (c *conn) deliverStored(m *persist.Message) {
	if _, ok := c.known[m.ID]; ok {
		return
	}
	now := time.Now()
	if m.Expired(now) {
		return
	}
	if m.Mode == persist.Queue && now.Sub(c.fetchedAt) > c.h.opts.Fetch.LeaseOrDefault()/2 {
		return // the claim is running out: the message goes to whoever claims it next
	}
	sub, ok := matchSubs(c.subs, m.Topic, m.Mode == persist.Queue)
	if !ok {
		// Unsubscribed meanwhile (a queue claim runs out and goes to
		// another consumer).
		c.known[m.ID] = now.UnixNano()
		return
	}
	e := &entry{id: m.ID, topic: m.Topic, mode: m.Mode, stored: true}
	if (sub.noLocal && m.From == c.id) || !c.h.canRead(c.cl, m.Topic) {
		c.known[m.ID] = 0
		if m.Mode == persist.Fanout {
			c.finished(e) // passed over for good [MQTT-3.8.3-3]
		}
		return
	}
	v5 := c.cl.Properties.ProtocolVersion == 5
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{
			Type:   packets.Publish,
			Qos:    min(m.QoS, sub.qos, c.h.server.Options.Capabilities.MaximumQos),
			Retain: m.Retain && sub.rap && v5,
		},
		TopicName:  m.Topic,
		Payload:    m.Payload,
		Origin:     m.From,
		Created:    now.Unix(),
		Expiry:     expiryUnix(m.Expiry),
		Properties: properties(m),
	}
	pk.Properties.SubscriptionIdentifier = sub.ids
	if c.send(pk, e) {
		c.h.replayed.Add(1)
	}
}

func (c *conn) sendMem() bool {
	sent := false
	for c.ctx.Err() == nil && c.room() > 0 {
		c.mu.Lock()
		if c.kicks != c.seenKicks {
			// Messages were spilled (or a subscription or queue message
			// came) since the store was last read: memory may now hold
			// messages newer than spilled ones of the same topic, which
			// the store must deliver first. Sending one here would break
			// the order and its ack would move the topic's cursor past
			// the spilled ones, which then were never delivered. Back to
			// intake, which turns to the store.
			c.mu.Unlock()
			return true
		}
		if len(c.mem) == 0 {
			c.mu.Unlock()
			return sent
		}
		it := c.mem[0]
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

// Packet IDs of deliveries: the upper half of the ID space.
const (
	firstPID = 1 << 15
	lastPID  = 1<<16 - 1
)

// nextPacketID returns a free packet ID for a delivery, counting up from
// firstPID. mochi refuses a client's SUBSCRIBE, UNSUBSCRIBE or QoS 2
// PUBLISH whose packet ID is that of a message in flight to the client
// ("Packet Identifier in use"), though each side numbers its own packets
// [MQTT-2.2.1-2]; clients number theirs from 1, and mochi its own
// deliveries too, so a reconnecting client whose stored messages start
// flowing right after the CONNACK would get its first SUBSCRIBE refused if
// the deliveries took IDs from 1 as well.
func (c *conn) nextPacketID() (uint32, error) {
	c.cl.Lock()
	defer c.cl.Unlock()
	inf := c.cl.State.Inflight
	for range lastPID - firstPID + 1 {
		if c.pid < firstPID || c.pid >= lastPID {
			c.pid = firstPID
		} else {
			c.pid++
		}
		if _, used := inf.Get(uint16(c.pid)); !used {
			return c.pid, nil
		}
	}
	return 0, packets.ErrQuotaExceeded
}

// send writes a PUBLISH to the client, tracking it in mochi's inflight
// messages (QoS 1 and 2) or recording it delivered at once (QoS 0).
func (c *conn) send(pk packets.Packet, e *entry) bool {
	pk.Connect.ClientIdentifier = tag{kind: kindSent, mode: e.mode, id: e.id}.String()
	pk.FixedHeader.Dup = false
	pk.Ignore = false
	pk.PacketID = 0
	inf := c.cl.State.Inflight
	if pk.FixedHeader.Qos > 0 {
		pid, err := c.nextPacketID()
		if err != nil {
			c.h.log.Warn("mqttpersist: no free packet ID; the store delivers the message later", "client", c.id, "topic", e.topic)
			return false
		}
		pk.PacketID = uint16(pid)
		c.pending[pk.PacketID] = e
		c.addOpen(e)
		if inf.Set(pk) {
			atomic.AddInt64(&c.h.server.Info.Inflight, 1)
		}
	}
	c.known[e.id] = 0
	err := c.cl.WritePacket(pk)
	if err != nil && errors.Is(err, packets.ErrPacketTooLarge) {
		// Larger than the client takes: discarded as if delivered [MQTT-3.1.2-25].
		if pk.PacketID != 0 {
			delete(c.pending, pk.PacketID)
			c.delOpen(e)
			if inf.Delete(pk.PacketID) {
				atomic.AddInt64(&c.h.server.Info.Inflight, -1)
			}
		}
		c.finished(e)
		return false
	}
	if err != nil {
		if c.cl.Closed() {
			c.cancel()
		}
		return false
	}
	if pk.FixedHeader.Qos == 0 {
		c.finished(e)
	}
	return true
}

func (c *conn) sleep() {
	var tc <-chan time.Time
	d := time.Duration(-1)
	if c.db && len(c.backlog) == 0 && !c.retryAt.IsZero() {
		d = time.Until(c.retryAt)
	}
	if len(c.unsent) > 0 {
		if u := time.Until(c.ackRetryAt); d < 0 || u < d {
			d = u
		}
	}
	if len(c.ready) > 0 {
		if u := time.Until(c.readySince.Add(ackDelay)); d < 0 || u < d {
			d = u
		}
	}
	if d >= 0 {
		t := time.NewTimer(max(d, time.Millisecond))
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-c.wake:
	case <-c.ctx.Done():
	case <-tc:
	}
}

// finish records the last acks and takes the unacknowledged deliveries out
// of mochi's session, so that the next connection gets them from the store,
// in order, rather than as mochi's resends.
func (c *conn) finish() {
	c.intake()
	c.record(true, true)
	inf := c.cl.State.Inflight
	for pid, e := range c.pending {
		pk, ok := inf.Get(pid)
		if !ok || pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if t, ok := parseTag(pk.Connect.ClientIdentifier); ok && t.id == e.id && inf.Delete(pid) {
			atomic.AddInt64(&c.h.server.Info.Inflight, -1)
		}
	}
}
