package mochi

import (
	"net"
	"sort"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// A tag marks a PUBLISH packet whose message is in the store and can be
// fetched back. It rides in the packet's Connect.ClientIdentifier, a field
// mochi copies with the packet but never encodes in a PUBLISH, so it never
// reaches the wire and a client cannot forge it.
const tagPrefix = "\x00mqttpersist:"

// Tag kinds.
const (
	kindLive = 'l' // a published message, before the Hook routed it
	kindSent = 's' // a delivery the Hook made (it may come back as a resend)
)

type tag struct {
	kind byte
	mode persist.Mode
	id   string
}

func (t tag) String() string {
	m := byte('f')
	if t.mode == persist.Queue {
		m = 'q'
	}
	return tagPrefix + string([]byte{t.kind, m}) + t.id
}

func parseTag(s string) (tag, bool) {
	if len(s) < len(tagPrefix)+3 || !strings.HasPrefix(s, tagPrefix) {
		return tag{}, false
	}
	s = s[len(tagPrefix):]
	t := tag{kind: s[0], id: s[2:]}
	switch s[1] {
	case 'f':
		t.mode = persist.Fanout
	case 'q':
		t.mode = persist.Queue
	default:
		return tag{}, false
	}
	return t, t.kind == kindLive || t.kind == kindSent
}

// normFilter writes a shared filter's first level as "$share": mochi takes
// it case-insensitively, the topic package (and the stores) as written.
func normFilter(f string) string {
	if len(f) > 7 && f[6] == '/' && strings.EqualFold(f[:6], "$share") && f[:6] != "$share" {
		return "$share" + f[6:]
	}
	return f
}

func isShared(f string) bool {
	_, _, ok := topic.Shared(f)
	return ok
}

// host returns the host part of a remote address.
func host(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// message converts a PUBLISH from cl into a persist.Message with a new ID.
func (h *Hook) message(cl *mqtt.Client, pk *packets.Packet, now time.Time) *persist.Message {
	m := &persist.Message{
		ID:       persist.NewIDAt(now),
		Topic:    pk.TopicName,
		Payload:  pk.Payload,
		QoS:      pk.FixedHeader.Qos,
		Retain:   pk.FixedHeader.Retain,
		From:     cl.ID,
		Username: string(cl.Properties.Username),
		PeerHost: host(cl.Net.Remote),
		Node:     h.opts.Node,
		Time:     now,
	}
	p := &pk.Properties
	m.Expiry = storedExpiry(pk, now)
	if p.PayloadFormatFlag {
		v := p.PayloadFormat
		m.Props.PayloadFormat = &v
	}
	m.Props.ContentType = p.ContentType
	m.Props.ResponseTopic = p.ResponseTopic
	if len(p.CorrelationData) > 0 {
		m.Props.CorrelationData = p.CorrelationData
	}
	if len(p.User) > 0 {
		m.Props.User = make([]persist.UserProperty, len(p.User))
		for i, u := range p.User {
			m.Props.User[i] = persist.UserProperty{Key: u.Key, Value: u.Val}
		}
	}
	return m
}

// properties converts a stored message's MQTT 5 properties.
func properties(m *persist.Message) packets.Properties {
	var p packets.Properties
	if m.Props.PayloadFormat != nil {
		p.PayloadFormat = *m.Props.PayloadFormat
		p.PayloadFormatFlag = true
	}
	p.ContentType = m.Props.ContentType
	p.ResponseTopic = m.Props.ResponseTopic
	if len(m.Props.CorrelationData) > 0 {
		p.CorrelationData = m.Props.CorrelationData
	}
	if len(m.Props.User) > 0 {
		p.User = make([]packets.UserProperty, len(m.Props.User))
		for i, u := range m.Props.User {
			p.User[i] = packets.UserProperty{Key: u.Key, Val: u.Value}
		}
	}
	return p
}

// expiryUnix returns t as mochi's absolute expiry (unix seconds, rounded
// up), or 0 for no expiry.
func expiryUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// retainedPacket converts a stored retained message into a packet for
// mochi's retained index.
func retainedPacket(m *persist.Message) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Retain: true, Qos: m.QoS},
		TopicName:       m.Topic,
		Payload:         m.Payload,
		Origin:          m.From,
		Created:         m.Time.Unix(),
		Expiry:          expiryUnix(m.Expiry),
		ProtocolVersion: 5,
		Properties:      properties(m),
	}
}

// subscription converts a mochi subscription for the store.
func subscription(s packets.Subscription, maxQoS byte) persist.Subscription {
	return persist.Subscription{
		Filter:            normFilter(s.Filter),
		QoS:               min(s.Qos, maxQoS),
		NoLocal:           s.NoLocal,
		RetainAsPublished: s.RetainAsPublished,
		RetainHandling:    s.RetainHandling,
		Identifier:        s.Identifier,
	}
}

// mochiSub converts a stored subscription for mochi.
func mochiSub(s persist.Subscription) packets.Subscription {
	return packets.Subscription{
		Filter:            s.Filter,
		Qos:               s.QoS,
		NoLocal:           s.NoLocal,
		RetainAsPublished: s.RetainAsPublished,
		RetainHandling:    s.RetainHandling,
		Identifier:        s.Identifier,
	}
}

// merged is what a client's matching subscriptions ask of one delivery.
type merged struct {
	qos     byte
	noLocal bool
	rap     bool
	ids     []int
}

// matchSubs merges the subscriptions in subs that match name. Shared
// subscriptions count only when shared is true.
func matchSubs(subs map[string]packets.Subscription, name string, shared bool) (merged, bool) {
	var m merged
	found := false
	for f, s := range subs {
		f = normFilter(f)
		if isShared(f) && !shared {
			continue
		}
		if !topic.Match(f, name) {
			continue
		}
		if !found || s.Qos > m.qos {
			m.qos = s.Qos
		}
		found = true
		m.noLocal = m.noLocal || s.NoLocal
		m.rap = m.rap || s.RetainAsPublished
		if s.Identifier > 0 {
			m.ids = append(m.ids, s.Identifier)
		}
	}
	sort.Ints(m.ids)
	return m, found
}
