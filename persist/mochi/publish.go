package mochi

import (
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

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
