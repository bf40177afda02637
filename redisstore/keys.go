package redisstore

import (
	"strings"
)

// keys makes the store's key names (see the package doc, # Keys).
type keys struct {
	prefix string
	// Key stems, each ending in ':'.
	client, node, sub, subOpt, subStart, msg, fanout, queueIdx, acked, cursor, retain, notify, groupClaim string
	// connected is the channel of client notices.
	connected string
	// Topic registries: per kind a sorted set of topic names scored by
	// expiry and one scored 0 for prefix ranges, in one hash slot.
	fanTopics, queueTopics, retainTopics registry
}

// registry names the two sorted sets of a topic registry.
type registry struct {
	exp, lex string
}

func newRegistry(prefix, kind string) registry {
	// The hash tag {<prefix>:<kind>} puts both keys in one Cluster slot.
	k := prefix + ":topics:{" + prefix + ":" + kind + "}"
	return registry{exp: k, lex: k + ":lex"}
}

func newKeys(prefix string) keys {
	p := prefix + ":"
	return keys{
		prefix:       prefix,
		client:       p + "client:",
		node:         p + "node:",
		sub:          p + "sub:",
		subOpt:       p + "subopt:",
		subStart:     p + "substart:",
		msg:          p + "msg:",
		fanout:       p + "fanout:",
		queueIdx:     p + "queue:",
		acked:        p + "acked:",
		cursor:       p + "cursor:",
		retain:       p + "retain:",
		notify:       p + "notify:",
		groupClaim:   p + "groupclaim:",
		connected:    p + "connected",
		fanTopics:    newRegistry(prefix, "fanout"),
		queueTopics:  newRegistry(prefix, "queue"),
		retainTopics: newRegistry(prefix, "retain"),
	}
}

func (k *keys) clientKey(id string) string    { return k.client + id }
func (k *keys) nodeKey(node string) string    { return k.node + node }
func (k *keys) subKey(id string) string       { return k.sub + id }
func (k *keys) subOptKey(id string) string    { return k.subOpt + id }
func (k *keys) subStartKey(id string) string  { return k.subStart + id }
func (k *keys) msgKey(id string) string       { return k.msg + id }
func (k *keys) retainKey(topic string) string { return k.retain + topic }

// fanoutKeys names the four keys of a topic's fanout messages, which
// share the hash tag {topic} (one Cluster slot, so that one script
// changes them together): the index (IDs scored by their position, seq),
// the topic's counter of positions, the IDs scored by expiry and the IDs
// scored 0 (in ID order, for ranges of IDs: ZRANGE BYLEX).
type fanoutKeys struct {
	idx, seq, exp, ids string
}

func (k *keys) fanoutKeys(topic string) fanoutKeys {
	base := k.fanout + "{" + tag(topic) + "}"
	return fanoutKeys{idx: base, seq: base + ":seq", exp: base + ":exp", ids: base + ":ids"}
}

// queueKey is the index of one topic's queue messages, scored by expiry.
func (k *keys) queueKey(topic string) string { return k.queueIdx + topic }

// topicsKey is the registry of the topics that have messages of a mode.
func (k *keys) topicsKey(queue bool) registry {
	if queue {
		return k.queueTopics
	}
	return k.fanTopics
}

// ackedKey is the seeds' mqtt:acked:${clientid}:${topic}: the highest ID
// the client acked on topic. A client ID holding ':' or '%' is written
// with those two bytes percent-encoded (%3A, %25), so that no two (client,
// topic) pairs share a key; every other client ID is written as it is.
func (k *keys) ackedKey(clientID, topic string) string {
	return k.acked + escapeClientID(clientID) + ":" + topic
}

// cursorKeys names a client's fanout cursor of a topic, five keys that
// share the hash tag {clientid} (every cursor key of a client is in the
// client's Cluster slot): the watermark (a position of the topic: every
// message at or below it is acked, expired, in the base or in the passed
// set), the sorted set of the IDs acked above it, the set of the IDs
// below it that it passed unacked because they were due to none of the
// client's subscriptions, the base (a hash from, to, start: the range of
// such messages kept as one: those at positions in (from, to] with IDs at
// or before start) and the set of the IDs in the base that the client
// acked (kept).
type cursorKeys struct {
	w, acks, passed, base, kept string
}

func (k *keys) cursorKeys(clientID, topic string) cursorKeys {
	b := k.cursor + "{" + tag(clientID) + "}:"
	return cursorKeys{w: b + "w:" + topic, acks: b + "a:" + topic, passed: b + "p:" + topic, base: b + "b:" + topic, kept: b + "k:" + topic}
}

// groupClaimKey is the claim of message id in a shared subscription group
// (a "$share/<group>/<filter>"): the owner's client ID, expiring with its
// lease. The group is the hash tag, so that every key of a Claim, which
// names one group, is in one Cluster slot; the tag ends at the first '}'
// (tag encodes any in the group), so no two (group, id) pairs share a key.
func (k *keys) groupClaimKey(group, id string) string {
	return k.groupClaim + "{" + tag(group) + "}:" + id
}

// notifyChannel is the pub/sub channel of notices of topic.
func (k *keys) notifyChannel(topic string) string { return k.notify + topic }

// tag returns s for a hash tag: s itself, or with '%', '{' and '}'
// percent-encoded (%25, %7B, %7D) when it holds any, so that the tag ends
// at the '}' that follows it and no two names share a tag.
func tag(s string) string {
	if !strings.ContainsAny(s, "%{}") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b.WriteString("%25")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// escapeClientID returns id, or id with '%' and ':' percent-encoded when it
// holds either (see ackedKey).
func escapeClientID(id string) string {
	if !strings.ContainsAny(id, ":%") {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch id[i] {
		case '%':
			b.WriteString("%25")
		case ':':
			b.WriteString("%3A")
		default:
			b.WriteByte(id[i])
		}
	}
	return b.String()
}
