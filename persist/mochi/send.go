package mochi

import (
	"errors"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

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
		if _, used := inf.Get(uint16(c.pid)); !used && !c.reserved(uint16(c.pid)) {
			return c.pid, nil
		}
	}
	return 0, packets.ErrQuotaExceeded
}

// batch holds the writes to the client until the function it returns is
// called, which writes them at once: the PUBLISHes of one batch of sends go
// out in one write instead of one each. mochi's WritePacket still encodes
// every packet (hooks, topic alias, Maximum Packet Size), so only when the
// bytes reach the connection changes. A failed write is handled as send
// handles one.
func (c *conn) batch() func() {
	c.out.hold()
	c.batched = c.batched[:0]
	return func() {
		if err := c.out.flush(); err != nil {
			c.notWritten(c.batched)
			if c.cl.Closed() {
				c.cancel()
			}
		}
		c.batched = c.batched[:0]
	}
}

// notWritten takes the deliveries of packet IDs pids, whose write failed
// (the connection is closing), out of flight: they were not delivered,
// so the next connection gets them from the store as first deliveries
// (DUP 0), not as mochi's or the Hook's resends of what this one sent.
func (c *conn) notWritten(pids []uint16) {
	inf := c.cl.State.Inflight
	for _, pid := range pids {
		e, ok := c.pending[pid]
		if !ok {
			continue
		}
		delete(c.pending, pid)
		delete(c.known, e.id)
		if e.dup { // sent on an earlier connection all the same
			if c.resends == nil {
				c.resends = map[string]uint16{}
			}
			c.resends[e.id] = pid
		}
		if inf.Delete(pid) {
			atomic.AddInt64(&c.h.server.Info.Inflight, -1)
		}
	}
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
		pid, dup := c.resendID(e.id) // sent before, unacknowledged (resend.go)
		if !dup {
			id, err := c.nextPacketID()
			if err != nil {
				c.h.log.Warn("mqttpersist: no free packet ID; the store delivers the message later", "client", c.id, "topic", e.topic)
				return false
			}
			pid = uint16(id)
		}
		pk.FixedHeader.Dup = dup
		pk.PacketID = pid
		e.dup = dup
		c.pending[pk.PacketID] = e
		c.batched = append(c.batched, pid)
		if inf.Set(pk) {
			atomic.AddInt64(&c.h.server.Info.Inflight, 1)
		}
	}
	c.known[e.id] = 0
	out := pk
	c.alias(&out) // the connection's topic alias, only on the wire (send_alias.go)
	err := c.cl.WritePacket(out)
	if err != nil && errors.Is(err, packets.ErrPacketTooLarge) {
		// Larger than the client takes: discarded as if delivered [MQTT-3.1.2-25].
		if pk.PacketID != 0 {
			delete(c.pending, pk.PacketID)
			if inf.Delete(pk.PacketID) {
				atomic.AddInt64(&c.h.server.Info.Inflight, -1)
			}
		}
		c.finished(e)
		return false
	}
	if err != nil {
		if pk.PacketID != 0 {
			c.notWritten([]uint16{pk.PacketID})
		}
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

// OnPacketEncode keeps the user properties of PUBLISH packets to clients
// that set Request Problem Information to 0: the rule only covers other
// packets [MQTT-3.1.2-29], and mochi would drop them.
func (h *Hook) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish {
		pk.Mods.DisallowProblemInfo = false
	}
	return pk
}
