package mochi

import "github.com/mochi-mqtt/server/v2/packets"

// alias gives a PUBLISH to the client the topic alias mochi's
// publishToClient gives it [MQTT-3.3.2-12]: from the connection's own
// outbound alias table (mochi's OutboundTopicAliases, which mochi's own
// deliveries to the client share), within the client's Topic Alias
// Maximum. The first message of a topic sets the alias with the topic
// name, the next ones use it with an empty topic name; once the maximum is
// used up, new topics go without one. An alias belongs to the connection
// [MQTT-3.3.2-10], so a message replayed after a reconnect gets the new
// connection's alias, never the one an earlier delivery of it had.
//
// As in mochi, the alias is taken before the write: a message then
// discarded as larger than the client's Maximum Packet Size leaves an
// alias the client never saw (mochi's own deliveries do the same).
func (c *conn) alias(pk *packets.Packet) {
	if c.cl.Properties.Props.TopicAliasMaximum == 0 || c.cl.State.TopicAliases.Outbound == nil {
		return
	}
	a, exists := c.cl.State.TopicAliases.Outbound.Set(pk.TopicName)
	if a == 0 {
		return
	}
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = a, true
	if exists {
		pk.TopicName = ""
	}
}
