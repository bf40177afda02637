package mochi

import (
	"reflect"
	"sort"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttpersist/mqttpersist/persist"
)

// match merges the client's subscriptions that match a stored message's
// topic as mochi merges them for a live message: through a topic index of
// mochi's (mqtt.TopicsIndex) holding the client's subscriptions, whose
// Subscribers merge them with packets.Subscription.Merge — the highest
// QoS, No Local if any asks, every subscription identifier, and Retain As
// Published of the subscription the index finds first. Queue messages
// also match shared subscriptions (matchSubs).
func (c *conn) match(m *persist.Message) (merged, bool) {
	if m.Mode == persist.Queue {
		return matchSubs(c.subs, m.Topic, true)
	}
	if c.index == nil || reflect.ValueOf(c.indexOf).UnsafePointer() != reflect.ValueOf(c.subs).UnsafePointer() {
		c.index = mqtt.NewTopicsIndex()
		for _, s := range c.subs {
			if !isShared(normFilter(s.Filter)) {
				c.index.Subscribe(c.id, s)
			}
		}
		c.indexOf = c.subs
	}
	s, ok := c.index.Subscribers(m.Topic).Subscriptions[c.id]
	if !ok {
		return merged{}, false
	}
	out := merged{qos: s.Qos, noLocal: s.NoLocal, rap: s.RetainAsPublished}
	for _, id := range s.Identifiers {
		if id > 0 {
			out.ids = append(out.ids, id)
		}
	}
	if len(s.Identifiers) == 0 && s.Identifier > 0 {
		out.ids = append(out.ids, s.Identifier)
	}
	sort.Ints(out.ids)
	return out, true
}
