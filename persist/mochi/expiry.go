package mochi

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// storedExpiry returns when a published message expires, as mochi has it
// in the packet it delivers: the publish second plus the Message Expiry
// Interval, capped by the server's MaximumMessageExpiryInterval (mochi
// sets pk.Expiry so before OnPublish). So a replayed message counts its
// interval down by the same seconds as mochi's delivery of it. Zero when
// the publisher set no interval: the message has no expiry of its own (a
// Router's Rule.Expiry may give it one), though mochi gives every such
// message the server's maximum (see MQTT 5 on the wire in the package
// doc).
func storedExpiry(pk *packets.Packet, now time.Time) time.Time {
	iv := pk.Properties.MessageExpiryInterval
	switch {
	case iv == 0:
		return time.Time{}
	case pk.Expiry > 0:
		return time.Unix(pk.Expiry, 0)
	default:
		return now.Add(time.Duration(iv) * time.Second)
	}
}
