package mochi

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/internal/pause"
	"github.com/mqttpersist/mqttpersist/persist"
)

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

// intake applies the queued acks and resends.
func (c *conn) intake() {
	c.mu.Lock()
	evs := c.events
	c.events = nil
	kicks := c.kicks
	c.mu.Unlock()
	for _, ev := range evs {
		if ev.e != nil {
			c.pending[ev.pid] = ev.e
			c.known[ev.e.id] = 0
			continue
		}
		e, ok := c.pending[ev.pid]
		if !ok {
			continue // an ack of a message the Hook did not send
		}
		delete(c.pending, ev.pid)
		c.finished(e)
	}
	if kicks != c.seenKicks {
		c.seenKicks = kicks
		c.replay()
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

// record sends the acks to the store, in one call: when forced, or when
// enough of them waited (see ackBatch). Each ack acks its message alone
// (persist.Store.Acked), so acks are recorded in the order they came,
// whatever deliveries before them are still unacknowledged.
func (c *conn) record(force, final bool) {
	if len(c.ready) == 0 && len(c.unsent) == 0 {
		return
	}
	if !force && len(c.unsent) == 0 && len(c.ready) < ackBatch && time.Since(c.readySince) < ackDelay {
		return
	}
	batch := c.ready
	c.ready = nil
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
	parent := c.acks
	batch = c.recordGroups(parent, batch)
	if len(batch) == 0 {
		return
	}
	acks := make([]persist.Ack, len(batch))
	for i, e := range batch {
		acks[i] = persist.Ack{ID: e.id, Topic: e.topic}
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
		if c.ctx.Err() != nil {
			// Ending: recordLast tries again, and logs what it gives up.
			c.unsent, c.lastErr = batch, err
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

// recordLast records the connection's last acks (final), trying again
// while the store fails, until the acks' context ends (ackGrace after the
// connection's end, see stop): the disconnect written after them tells
// the client's next node that its acks are recorded.
func (c *conn) recordLast() {
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		c.record(true, true)
		if len(c.unsent) == 0 {
			return
		}
		if !pause.For(c.acks, wait) {
			// The messages of these acks come to the client again.
			c.h.fail("Acked", c.id, c.unsent[0].topic, fmt.Errorf("gave up %d acks of the ended connection: %w", len(c.unsent), c.lastErr))
			return
		}
	}
}

// recordGroups records the acks of the shared groups' messages in batch
// for their groups (a group's position is the client its shared filter
// names, see persist.Router.SharedGroups) and returns the entries whose
// ack is the client's own too. A group ack that fails is not tried again:
// the member's claim runs out and the message goes to a member again.
func (c *conn) recordGroups(parent context.Context, batch []*entry) []*entry {
	if !slices.ContainsFunc(batch, func(e *entry) bool { return len(e.groups) > 0 }) {
		return batch
	}
	byGroup := map[string][]persist.Ack{}
	var own, groupsOnly []*entry
	for _, e := range batch {
		for _, g := range e.groups {
			byGroup[g] = append(byGroup[g], persist.Ack{ID: e.id, Topic: e.topic})
		}
		if e.notOwn {
			groupsOnly = append(groupsOnly, e)
		} else {
			own = append(own, e)
		}
	}
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		ctx, cancel := c.h.call(parent)
		err := c.h.store.Acked(ctx, g, byGroup[g]...)
		cancel()
		if err != nil {
			c.h.fail("Acked", g, byGroup[g][0].Topic, err)
		}
	}
	c.forget(groupsOnly)
	return own
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
