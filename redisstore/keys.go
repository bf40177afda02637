package redisstore

import (
	"strings"
)

// keys makes the store's key names (see the package doc, # Keys).
type keys struct {
	prefix string
	// Key stems, each ending in ':'.
	client, node, sub, subOpt, subStart, msg, fanIdx, queueIdx, acked, retain string
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
		fanIdx:       p + "topic:",
		queueIdx:     p + "queue:",
		acked:        p + "acked:",
		retain:       p + "retain:",
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

// indexKey is the sorted index of one topic's messages of a mode.
func (k *keys) indexKey(queue bool, topic string) string {
	if queue {
		return k.queueIdx + topic
	}
	return k.fanIdx + topic
}

// topicsKey is the registry of the topics that have messages of a mode.
func (k *keys) topicsKey(queue bool) registry {
	if queue {
		return k.queueTopics
	}
	return k.fanTopics
}

// ackedKey is the seeds' mqtt:acked:${clientid}:${topic}, the client's
// fanout cursor of topic. A client ID holding ':' or '%' is written with
// those two bytes percent-encoded (%3A, %25), so that no two (client,
// topic) pairs share a key; every other client ID is written as it is.
func (k *keys) ackedKey(clientID, topic string) string {
	return k.acked + escapeClientID(clientID) + ":" + topic
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
