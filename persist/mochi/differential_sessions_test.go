package mochi_test

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// msg is a PUBLISH of payload to topic at qos; with changes its
// properties or flags.
func msg(topic, payload string, qos byte, with ...func(*packets.Packet)) packets.Packet {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     []byte(payload),
	}
	for _, f := range with {
		f(&pk)
	}
	return pk
}

func retained(pk *packets.Packet) { pk.FixedHeader.Retain = true }

func expiring(s uint32) func(*packets.Packet) {
	return func(pk *packets.Packet) { pk.Properties.MessageExpiryInterval = s }
}

func sub(filter string, qos byte, with ...func(*packets.Subscription)) packets.Subscription {
	s := packets.Subscription{Filter: filter, Qos: qos}
	for _, f := range with {
		f(&s)
	}
	return s
}

// persistent is a subscriber's CONNECT: a session that outlives the
// connection.
var persistent = wireOpts{Clean: true, Expiry: 300}

// publisher connects the sessions' publisher.
func (e *env) publisher() *wireClient {
	return e.connect("pub", wireOpts{Clean: true})
}

// publishAll publishes msgs in order; in the live variant each is awaited
// at sub (want counts what sub has by then) before the next.
func (e *env) publishAll(pub, sub *wireClient, replay bool, want int, msgs ...packets.Packet) int {
	e.t.Helper()
	for _, m := range msgs {
		pub.publish(m)
		want++
		e.live(sub, want, replay)
	}
	return want
}

// The sessions of TestDifferential, one per feature.
var sessions = []session{
	{
		// Server→client topic aliases [MQTT-3.3.2-12]: the first message
		// of a topic sets an alias, the next ones use it with an empty
		// topic; no alias once the client's maximum is used up. mochi's
		// own deliveries (QoS 0 here, which the store does not keep) and
		// the Hook's share the connection's alias table.
		name: "topic-alias",
		script: func(e *env, replay bool) {
			o := persistent
			o.AliasMax = 3
			s := e.connect("sub", o)
			s.subscribe(0, sub("al/#", 2))
			pub := e.publisher()
			pub.publish(msg("al/x", "m01", 1))
			e.await(s, 1)
			e.away("sub", replay)
			n := e.publishAll(pub, s, replay, 1, msg("al/x", "m02", 1))
			if !replay { // QoS 0: not kept for an away session
				n = e.publishAll(pub, s, replay, n, msg("al/w", "m03", 0))
			}
			n = e.publishAll(pub, s, replay, n,
				msg("al/w", "m04", 1), msg("al/y", "m05", 1), msg("al/z", "m06", 1),
				msg("al/y", "m07", 2), msg("al/x", "m08", 1))
			s = e.back("sub", replay)
			if replay {
				n -= 1
			}
			e.await(s, n)
		},
	},
	{
		// Subscription identifiers of every matching subscription, in
		// order [MQTT-3.3.4-3]; overlapping subscriptions give one
		// message at the highest QoS [MQTT-3.3.4-2].
		name: "subscription-identifiers",
		script: func(e *env, replay bool) {
			s := e.connect("sub", persistent)
			s.subscribe(7, sub("si/#", 1))
			s.subscribe(3, sub("si/+/x", 2))
			s.subscribe(0, sub("si/a/x", 0))
			s.subscribe(12, sub("si/b", 2), sub("si/c", 1))
			pub := e.publisher()
			e.away("sub", replay)
			n := e.publishAll(pub, s, replay, 0,
				msg("si/a/x", "m01", 2), msg("si/b", "m02", 2), msg("si/c", "m03", 1),
				msg("si/d/x", "m04", 1), msg("si/e", "m05", 1))
			s = e.back("sub", replay)
			e.await(s, n)
		},
	},
	{
		// No Local: a client's own messages do not come back to it
		// [MQTT-3.8.3-3]; another client's do.
		name: "no-local",
		script: func(e *env, replay bool) {
			me := e.connect("me", persistent)
			me.subscribe(0, sub("nl/t", 1, func(s *packets.Subscription) { s.NoLocal = true }))
			other := e.connect("other", wireOpts{Clean: true})
			other.subscribe(0, sub("nl/t", 1))
			me.publish(msg("nl/t", "m01", 1))
			e.await(other, 1)
			e.away("me", replay)
			other.publish(msg("nl/t", "m02", 1))
			e.live(me, 1, replay)
			e.await(other, 2)
			me = e.back("me", replay)
			e.await(me, 1)
		},
	},
	{
		// Retain As Published: the retain flag of a message passed on
		// as published only for subscriptions that ask [MQTT-3.3.1-12]
		// [MQTT-3.3.1-13].
		name: "retain-as-published",
		script: func(e *env, replay bool) {
			s := e.connect("sub", persistent)
			s.subscribe(0, sub("rap/a", 1, func(s *packets.Subscription) { s.RetainAsPublished = true }))
			s.subscribe(0, sub("rap/b", 1))
			// Overlapping, one asking: mochi merges them as its topic
			// index finds them (the first found decides).
			s.subscribe(0, sub("rap/+/x", 1, func(s *packets.Subscription) { s.RetainAsPublished = true }))
			s.subscribe(0, sub("rap/o/x", 1))
			pub := e.publisher()
			e.away("sub", replay)
			n := e.publishAll(pub, s, replay, 0,
				msg("rap/a", "m01", 1, retained), msg("rap/b", "m02", 1, retained),
				msg("rap/a", "m03", 1), msg("rap/b", "m04", 2, retained),
				msg("rap/o/x", "m05", 1, retained))
			s = e.back("sub", replay)
			e.await(s, n)
		},
	},
	{
		// Retain Handling 0 (retained messages at every subscribe), 1
		// (only for a new subscription) and 2 (never) [MQTT-3.3.1-9]
		// [MQTT-3.3.1-10] [MQTT-3.3.1-11]; retained messages keep their
		// properties and count their expiry down.
		name: "retain-handling",
		script: func(e *env, replay bool) {
			pub := e.publisher()
			pub.publish(msg("rh/y", "m02", 0, retained)) // QoS 0 first: done when the next PUBACK comes
			pub.publish(msg("rh/x", "m01", 1, retained, expiring(600), func(pk *packets.Packet) {
				pk.Properties.User = []packets.UserProperty{{Key: "k", Val: "v"}}
			}))
			s := e.connect("sub", persistent)
			rh := func(h byte) func(*packets.Subscription) {
				return func(s *packets.Subscription) { s.RetainHandling = h }
			}
			s.subscribe(0, sub("rh/#", 1, rh(0)))
			e.await(s, 2)
			s.subscribe(0, sub("rh/+", 1, rh(1)))
			e.await(s, 4)
			s.subscribe(0, sub("rh/+", 1, rh(1))) // exists: none
			s.subscribe(0, sub("rh/x", 1, rh(2))) // never
			e.quiet()
			e.away("sub", replay)
			pub.publish(msg("rh/x", "m03", 1, retained))
			s = e.back("sub", replay)
			n := 1
			if !replay {
				n += 4
			}
			e.await(s, n)                         // m03, once (the three subscriptions overlap)
			s.subscribe(0, sub("rh/+", 1, rh(1))) // exists, also after the reconnect: none
			s.subscribe(0, sub("rh/#", 1, rh(0))) // again: both
			e.await(s, n+2)
		},
	},
	{
		// Message expiry: the interval sent is what is left of it
		// [MQTT-3.3.2-6], capped by the server's maximum, also for a
		// message stored while the client was away; a message that
		// expired meanwhile is not sent [MQTT-3.3.2-5]. (No message
		// without an expiry here: difference 6.)
		name:        "message-expiry",
		exactExpiry: true,
		caps:        func(c *mqtt.Capabilities) { c.MaximumMessageExpiryInterval = 20 },
		script: func(e *env, replay bool) {
			s := e.connect("sub", persistent)
			s.subscribe(0, sub("ex/#", 1))
			pub := e.publisher()
			e.away("sub", replay)
			e.nextSecond()
			n := e.publishAll(pub, s, replay, 0,
				msg("ex/a", "m01", 1, expiring(1)),
				msg("ex/b", "m02", 2, expiring(30)), // capped: 20 s
				msg("ex/c", "m03", 1, expiring(10)))
			if replay {
				e.sleep(3)
				n = 2
			}
			s = e.back("sub", replay)
			e.await(s, n)
		},
	},
	{
		// User properties, every one, in order, with repeated keys
		// [MQTT-3.3.2-18].
		name: "user-properties",
		script: func(e *env, replay bool) {
			s := e.connect("sub", persistent)
			s.subscribe(0, sub("up/#", 1))
			pub := e.publisher()
			e.away("sub", replay)
			n := e.publishAll(pub, s, replay, 0,
				msg("up/a", "m01", 1, func(pk *packets.Packet) {
					pk.Properties.User = []packets.UserProperty{
						{Key: "z", Val: "1"}, {Key: "a", Val: "2"}, {Key: "z", Val: "3"}, {Key: "", Val: ""}, {Key: "ü", Val: "ß"},
					}
				}),
				msg("up/a", "m02", 2, func(pk *packets.Packet) {
					pk.Properties.User = []packets.UserProperty{{Key: "only", Val: "one"}}
				}))
			s = e.back("sub", replay)
			e.await(s, n)
		},
	},
	{
		// Payload Format Indicator and Content Type passed on unaltered
		// [MQTT-3.3.2-4] [MQTT-3.3.2-20].
		name: "payload-format-content-type",
		script: func(e *env, replay bool) {
			s := e.connect("sub", persistent)
			s.subscribe(0, sub("pf/#", 1))
			pub := e.publisher()
			e.away("sub", replay)
			n := e.publishAll(pub, s, replay, 0,
				msg("pf/a", "m01 text", 1, func(pk *packets.Packet) {
					pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = 1, true
					pk.Properties.ContentType = "text/plain; charset=utf-8"
				}),
				msg("pf/a", "m02\x00\xff", 1, func(pk *packets.Packet) {
					pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = 0, true
					pk.Properties.ContentType = "application/octet-stream"
				}),
				msg("pf/a", "m03", 1, func(pk *packets.Packet) { pk.Properties.ContentType = "x" }))
			s = e.back("sub", replay)
			e.await(s, n)
		},
	},
	{
		// Response Topic and Correlation Data passed on unaltered
		// [MQTT-3.3.2-15] [MQTT-3.3.2-16].
		name: "response-topic-correlation-data",
		script: func(e *env, replay bool) {
			s := e.connect("sub", persistent)
			s.subscribe(0, sub("rr/#", 1))
			pub := e.publisher()
			e.away("sub", replay)
			n := e.publishAll(pub, s, replay, 0,
				msg("rr/req", "m01", 1, func(pk *packets.Packet) {
					pk.Properties.ResponseTopic = "rr/reply/1"
					pk.Properties.CorrelationData = []byte{0, 1, 2, 0xff}
				}),
				msg("rr/req", "m02", 2, func(pk *packets.Packet) { pk.Properties.ResponseTopic = "rr/reply/2" }),
				msg("rr/req", "m03", 1, func(pk *packets.Packet) { pk.Properties.CorrelationData = []byte("c") }))
			s = e.back("sub", replay)
			e.await(s, n)
		},
	},
	{
		// Maximum Packet Size: a message larger than the client takes
		// is not sent [MQTT-3.1.2-25], and user properties that would
		// make it too large are left out (mochi's encoding).
		name: "maximum-packet-size",
		script: func(e *env, replay bool) {
			o := persistent
			o.MaxPacket = 200
			s := e.connect("sub", o)
			s.subscribe(0, sub("mp/#", 1))
			pub := e.publisher()
			e.away("sub", replay)
			n := e.publishAll(pub, s, replay, 0, msg("mp/a", "m01", 1))
			big := msg("mp/a", "m02"+string(bytes.Repeat([]byte("x"), 300)), 1)
			if replay && !e.hook() {
				big.TopicName = "unsubscribed" // difference 4
			}
			pub.publish(big)
			n = e.publishAll(pub, s, replay, n,
				msg("mp/a", "m03", 2),
				msg("mp/a", "m04"+string(bytes.Repeat([]byte("y"), 150)), 1, func(pk *packets.Packet) {
					pk.Properties.User = []packets.UserProperty{{Key: "long", Val: string(bytes.Repeat([]byte("u"), 60))}}
				}))
			s = e.back("sub", replay)
			e.await(s, n)
		},
	},
	{
		// Receive Maximum: no more unacknowledged QoS 1 and 2 messages
		// in flight to the client than it allows [MQTT-3.3.4-9]; the
		// rest follow its acks.
		name: "receive-maximum",
		script: func(e *env, replay bool) {
			o := persistent
			o.RecvMax, o.Manual = 2, true
			s := e.connect("sub", o)
			s.subscribe(0, sub("rm/#", 2))
			pub := e.publisher()
			pub.publish(msg("rm/a", "m01", 1))
			pub.publish(msg("rm/a", "m02", 2))
			pub.publish(msg("rm/a", "m03", 1))
			e.await(s, 2)
			e.quiet()
			if replay {
				e.away("sub", replay) // m01 and m02 unacknowledged, m03 not sent
				pub.publish(msg("rm/a", "m04", 1))
				pub.publish(msg("rm/a", "m05", 1))
				s = e.back("sub", replay)
				e.await(s, 2)
				e.quiet()
			}
			for n := 4; n < 8; n += 2 {
				s.ack()
				if !replay && n == 4 {
					pub.publish(msg("rm/a", "m04", 1))
					pub.publish(msg("rm/a", "m05", 1))
				}
				e.await(s, min(n, 5))
				e.quiet()
			}
			s.ack()
		},
	},
	{
		// QoS: a message goes at the lower of its QoS and the
		// subscription's [MQTT-3.8.4-8].
		name: "qos-downgrade",
		script: func(e *env, replay bool) {
			s0 := e.connect("sub0", persistent)
			s0.subscribe(0, sub("qd/#", 0))
			s1 := e.connect("sub1", persistent)
			s1.subscribe(0, sub("qd/#", 1))
			s2 := e.connect("sub2", persistent)
			s2.subscribe(0, sub("qd/#", 2))
			pub := e.publisher()
			e.away("sub0", replay)
			e.away("sub1", replay)
			e.away("sub2", replay)
			for i, m := range []packets.Packet{msg("qd/a", "m01", 0), msg("qd/a", "m02", 1), msg("qd/a", "m03", 2)} {
				pub.publish(m)
				e.live(s0, i+1, replay)
				e.live(s1, i+1, replay)
				e.live(s2, i+1, replay)
			}
			s0 = e.back("sub0", replay)
			s1 = e.back("sub1", replay)
			s2 = e.back("sub2", replay)
			if replay {
				e.hookOnly(func() { // difference 5
					e.await(s0, 2)
					e.differs("sub0")
				})
				e.await(s1, 2)
				e.await(s2, 2)
			}
		},
	},
	{
		// Shared subscriptions: each message to one member of the group
		// (any), and to a plain subscription as well.
		name:   "shared-subscription",
		groups: [][]string{{"g1", "g2"}},
		script: func(e *env, replay bool) {
			g1 := e.connect("g1", persistent)
			g1.subscribe(4, sub("$share/grp/sh/#", 2))
			g2 := e.connect("g2", persistent)
			g2.subscribe(4, sub("$share/grp/sh/#", 2))
			plain := e.connect("plain", persistent)
			plain.subscribe(0, sub("sh/#", 1))
			pub := e.publisher()
			e.away("g1", replay)
			for i := range 6 {
				pub.publish(msg("sh/t", "m0"+string(rune('1'+i)), byte(1+i%2)))
				e.await(plain, i+1)
			}
			e.quiet()
			if replay {
				e.back("g1", replay)
			}
			e.quiet()
			if n := e.cur["g1"].count() + e.cur["g2"].count(); !replay && n != 6 {
				e.t.Errorf("the group got %d messages, want 6", n)
			}
		},
	},
	{
		// An MQTT 3.1.1 and an MQTT 5 client on the same topic: the 3.1.1
		// one gets no properties and no Retain As Published.
		name: "mqtt311-and-5",
		script: func(e *env, replay bool) {
			v3 := persistent
			v3.V3, v3.Expiry, v3.Clean = true, 0, false
			old := e.connect("v3", v3)
			old.subscribe(0, sub("mx/#", 2, func(s *packets.Subscription) { s.RetainAsPublished = true }))
			v5 := e.connect("v5", persistent)
			v5.subscribe(9, sub("mx/#", 2, func(s *packets.Subscription) { s.RetainAsPublished = true }))
			pub := e.publisher()
			e.away("v3", replay)
			e.away("v5", replay)
			for i, m := range []packets.Packet{
				msg("mx/a", "m01", 1, retained, expiring(300), func(pk *packets.Packet) {
					pk.Properties.User = []packets.UserProperty{{Key: "k", Val: "v"}}
					pk.Properties.ContentType = "c"
				}),
				msg("mx/a", "m02", 2),
			} {
				pub.publish(m)
				e.live(old, i+1, replay)
				e.live(v5, i+1, replay)
			}
			old = e.back("v3", replay)
			v5 = e.back("v5", replay)
			e.await(old, 2)
			e.await(v5, 2)
		},
	},
	{
		// The QoS 2 flow: PUBLISH, PUBREC, PUBREL, PUBCOMP both ways;
		// replayed, a PUBREL the client did not complete is sent again
		// and an unacknowledged PUBLISH again with DUP [MQTT-4.4.0-1].
		name: "qos2-flow",
		script: func(e *env, replay bool) {
			o := persistent
			o.Manual, o.NoComp = true, replay
			s := e.connect("sub", o)
			s.subscribe(0, sub("q2/#", 2))
			pub := e.publisher()
			pub.publish(msg("q2/a", "m01", 2))
			e.await(s, 1)
			s.ack() // PUBREC; PUBREL comes (not completed when replayed)
			pub.publish(msg("q2/a", "m02", 2))
			e.await(s, 2)
			e.quiet()
			e.away("sub", replay)
			pub.publish(msg("q2/a", "m03", 2))
			e.live(s, 3, replay)
			o.NoComp = false
			if replay {
				e.opts["sub"] = o
			}
			s = e.back("sub", replay)
			want := 3
			if replay {
				want = 2
			}
			e.await(s, want)
			e.quiet()
			s.ack()
			e.quiet()
		},
	},
	{
		// A restart: stored messages and the session come back
		// (difference 1: mochi's run has no restart).
		name:       "restart",
		replayOnly: true,
		script: func(e *env, replay bool) {
			s := e.connect("sub", persistent)
			s.subscribe(5, sub("rs/#", 1, func(s *packets.Subscription) { s.RetainAsPublished = true }))
			pub := e.publisher()
			e.away("sub", replay)
			pub.publish(msg("rs/a", "m01", 2, retained))
			pub.publish(msg("rs/b", "m02", 1, func(pk *packets.Packet) {
				pk.Properties.User = []packets.UserProperty{{Key: "k", Val: "v"}}
			}))
			pub.disconnect()
			e.restart()
			s = e.back("sub", replay)
			e.await(s, 2)
		},
	},
}
