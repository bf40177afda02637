package redisstore

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Fields of a message hash (mqtt:msg:${msgid}) and of a retained hash
// (mqtt:retain:${topic}): the seeds' first, then this package's.
const (
	fID       = "id"
	fFrom     = "from"
	fQoS      = "qos"
	fTopic    = "topic"
	fRetain   = "retain"
	fPayload  = "payload"
	fTS       = "ts"        // seconds, as the seeds
	fTSms     = "ts_ms"     // Message.Time in milliseconds
	fExpiry   = "expiry_ms" // Message.Expiry in milliseconds; absent: never
	fMode     = "mode"      // "fanout" or "queue"
	fUsername = "username"
	fPeerHost = "peerhost"
	fNode     = "node"
	fProps    = "props" // MQTT 5 properties as JSON; absent: none
	// Queue claims, written by the claim script.
	fClaimedBy  = "claimed_by"
	fClaimUntil = "claim_until" // milliseconds, server time
)

// Fields of a client hash (mqtt:client:${clientid}).
const (
	cState       = "state"
	cOnlineAt    = "online_at"  // seconds, as the seeds
	cOfflineAt   = "offline_at" // seconds, or "undefined" as the seeds
	cNode        = "node"
	cUsername    = "username"
	cPeerHost    = "peerhost"
	cOnlineAtMs  = "online_at_ms"
	cOfflineAtMs = "offline_at_ms"
	undefined    = "undefined"
)

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMs(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}

func fromSec(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// score is a message's score in a topic index or registry: its expiry in
// milliseconds, +inf for never.
func score(expiry time.Time) float64 {
	if expiry.IsZero() {
		return math.Inf(1)
	}
	return float64(ms(expiry))
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// messageFields returns the hash fields of m as HSET arguments; now stands
// in for a zero m.Time.
func messageFields(m *persist.Message, now time.Time) []any {
	f := argFields(make([]any, 0, 28))
	writeMessage(&f, m, now)
	return f
}

// fieldWriter takes a message hash's fields, one name and value at a time
// (see writeMessage): argFields makes HSET arguments of them, packer packs
// them for publishScript.
type fieldWriter interface {
	field(name, value string)
	bytesField(name string, value []byte)
	intField(name string, value int64)
}

// writeMessage writes the hash fields of m to w; now stands in for a zero
// m.Time. It is the one list of a message hash's fields.
func writeMessage(w fieldWriter, m *persist.Message, now time.Time) {
	t := m.Time
	if t.IsZero() {
		t = now
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	w.field(fID, m.ID)
	w.field(fFrom, m.From)
	w.intField(fQoS, int64(m.QoS))
	w.field(fTopic, m.Topic)
	w.field(fRetain, boolStr(m.Retain))
	w.bytesField(fPayload, payload)
	w.intField(fTS, t.Unix())
	w.intField(fTSms, ms(t))
	w.field(fMode, m.Mode.String())
	for _, kv := range [...][2]string{{fUsername, m.Username}, {fPeerHost, m.PeerHost}, {fNode, m.Node}} {
		if kv[1] != "" {
			w.field(kv[0], kv[1])
		}
	}
	if !m.Expiry.IsZero() {
		w.intField(fExpiry, ms(m.Expiry))
	}
	if !m.Props.IsZero() {
		b, _ := json.Marshal(&m.Props) // valid UTF-8, checked by the kit: cannot fail
		w.bytesField(fProps, b)
	}
}

// argFields collects a message's fields as HSET arguments.
type argFields []any

func (f *argFields) field(name, value string)             { *f = append(*f, name, value) }
func (f *argFields) bytesField(name string, value []byte) { *f = append(*f, name, value) }
func (f *argFields) intField(name string, value int64) {
	*f = append(*f, name, strconv.FormatInt(value, 10))
}

// decodeMessage reads a message hash; ok is false for a missing or
// malformed hash.
func decodeMessage(h map[string]string) (*persist.Message, bool) {
	id, ok := h[fID]
	if !ok {
		return nil, false
	}
	m := &persist.Message{
		ID:       id,
		Topic:    h[fTopic],
		From:     h[fFrom],
		Username: h[fUsername],
		PeerHost: h[fPeerHost],
		Node:     h[fNode],
	}
	p := h[fPayload]
	m.Payload = make([]byte, len(p))
	copy(m.Payload, p)
	if q, err := strconv.Atoi(h[fQoS]); err == nil && q >= 0 && q <= 2 {
		m.QoS = byte(q)
	}
	r := h[fRetain]
	m.Retain = r == "true" || r == "1"
	if t, ok := fromMs(h[fTSms]); ok {
		m.Time = t
	} else if t, ok := fromSec(h[fTS]); ok {
		m.Time = t
	}
	if e, ok := h[fExpiry]; ok && e != "" {
		m.Expiry, _ = fromMs(e)
	}
	if h[fMode] == "queue" {
		m.Mode = persist.Queue
	}
	if pj, ok := h[fProps]; ok && pj != "" {
		_ = json.Unmarshal([]byte(pj), &m.Props)
	}
	return m, true
}

// pairs turns a flat [field, value, …] reply (of a script's HGETALL) into a
// map.
func pairs(v any) (map[string]string, bool) {
	arr, ok := v.([]any)
	if !ok || len(arr)%2 != 0 {
		return nil, false
	}
	h := make(map[string]string, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		k, ok1 := arr[i].(string)
		val, ok2 := arr[i+1].(string)
		if !ok1 || !ok2 {
			return nil, false
		}
		h[k] = val
	}
	return h, true
}
