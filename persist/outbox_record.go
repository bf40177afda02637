package persist

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Record operations.
const (
	opPublish    = 'p'
	opRetain     = 'r'
	opAcked      = 'a'
	opConnected  = 'k'
	opSubscribed = 's'
)

// record is one write in the outbox. It is stored in the compact binary
// form of appendRecord; the JSON tags are those of the records earlier
// versions wrote, which decodeRecord still reads.
type record struct {
	Op      byte           `json:"o"`
	Msg     *Message       `json:"m,omitempty"`
	Rule    string         `json:"u,omitempty"` // Msg's rule (unexported there)
	Client  string         `json:"c,omitempty"`
	Acks    []Ack          `json:"a,omitempty"`
	Conn    *Client        `json:"k,omitempty"` // opConnected
	Subs    []Subscription `json:"s,omitempty"` // opSubscribed, with Removed
	Removed []string       `json:"x,omitempty"`
}

// recordV1 is the first byte of a binary record. A JSON record starts
// with '{'.
const recordV1 = 0x01

// Presence bits of a binary record and of its message.
const (
	hasMsg  = 1 << 0
	hasConn = 1 << 1

	msgRetain   = 1 << 0
	msgFormat   = 1 << 1 // Props.PayloadFormat is set
	msgPayload  = 1 << 2 // Payload is not nil
	msgCorrData = 1 << 3 // Props.CorrelationData is not nil

	subNoLocal = 1 << 0
	subRAP     = 1 << 1
	subHistory = 1 << 2
)

// appendRecord appends the binary form of r to b:
//
//	version (recordV1), op, presence (hasMsg|hasConn),
//	Rule, Client, Acks, Subs, Removed, [Conn], [Msg]
//
// Strings and byte slices are a uvarint length and the bytes; a slice is a
// uvarint of its length plus one (0: nil), then its elements; a time is a
// byte of length and time.Time's binary form. Every field round-trips,
// nil and empty slices apart.
func appendRecord(b []byte, r *record) []byte {
	var pres byte
	if r.Msg != nil {
		pres |= hasMsg
	}
	if r.Conn != nil {
		pres |= hasConn
	}
	b = append(b, recordV1, r.Op, pres)
	b = appendString(b, r.Rule)
	b = appendString(b, r.Client)
	b = appendLen(b, len(r.Acks), r.Acks == nil)
	for _, a := range r.Acks {
		b = appendString(b, a.ID)
		b = appendString(b, a.Topic)
	}
	b = appendLen(b, len(r.Subs), r.Subs == nil)
	for i := range r.Subs {
		s := &r.Subs[i]
		b = appendString(b, s.Filter)
		var f byte
		if s.NoLocal {
			f |= subNoLocal
		}
		if s.RetainAsPublished {
			f |= subRAP
		}
		if s.History {
			f |= subHistory
		}
		b = append(b, s.QoS, s.RetainHandling, f)
		b = binary.AppendVarint(b, int64(s.Identifier))
		b = appendString(b, s.Start)
	}
	b = appendLen(b, len(r.Removed), r.Removed == nil)
	for _, s := range r.Removed {
		b = appendString(b, s)
	}
	if c := r.Conn; c != nil {
		b = appendString(b, c.ID)
		b = appendString(b, c.Username)
		b = appendString(b, c.PeerHost)
		b = appendString(b, c.Node)
		b = append(b, boolByte(c.Online))
		b = appendTime(b, c.OnlineAt)
		b = appendTime(b, c.OfflineAt)
	}
	if m := r.Msg; m != nil {
		var f byte
		if m.Retain {
			f |= msgRetain
		}
		if m.Props.PayloadFormat != nil {
			f |= msgFormat
		}
		if m.Payload != nil {
			f |= msgPayload
		}
		if m.Props.CorrelationData != nil {
			f |= msgCorrData
		}
		b = append(b, f, m.QoS, byte(m.Mode))
		if m.Props.PayloadFormat != nil {
			b = append(b, *m.Props.PayloadFormat)
		}
		b = appendString(b, m.ID)
		b = appendString(b, m.Topic)
		b = appendBytes(b, m.Payload)
		b = appendString(b, m.From)
		b = appendString(b, m.Username)
		b = appendString(b, m.PeerHost)
		b = appendString(b, m.Node)
		b = appendTime(b, m.Time)
		b = appendTime(b, m.Expiry)
		b = appendString(b, m.Props.ContentType)
		b = appendString(b, m.Props.ResponseTopic)
		b = appendBytes(b, m.Props.CorrelationData)
		b = appendLen(b, len(m.Props.User), m.Props.User == nil)
		for _, u := range m.Props.User {
			b = appendString(b, u.Key)
			b = appendString(b, u.Value)
		}
	}
	return b
}

// recordSize is about the size of r's binary form, to size buffers.
func recordSize(r *record) int {
	n := 16 + len(r.Rule) + len(r.Client)
	for _, a := range r.Acks {
		n += 4 + len(a.ID) + len(a.Topic)
	}
	for _, s := range r.Subs {
		n += 16 + len(s.Filter) + len(s.Start)
	}
	for _, s := range r.Removed {
		n += 2 + len(s)
	}
	if c := r.Conn; c != nil {
		n += 48 + len(c.ID) + len(c.Username) + len(c.PeerHost) + len(c.Node)
	}
	if m := r.Msg; m != nil {
		n += 64 + len(m.ID) + len(m.Topic) + len(m.Payload) + len(m.From) + len(m.Username) + len(m.PeerHost) +
			len(m.Node) + len(m.Props.ContentType) + len(m.Props.ResponseTopic) + len(m.Props.CorrelationData)
		for _, u := range m.Props.User {
			n += 4 + len(u.Key) + len(u.Value)
		}
	}
	return n
}

// boolByte is 1 for true, 0 for false.
func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// appendString appends s with its length.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendBytes appends v with its length.
func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendLen appends the length of a slice plus one, or 0 for a nil one.
func appendLen(b []byte, n int, isNil bool) []byte {
	if isNil {
		return append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(n)+1)
}

// appendTime appends a byte of length and t's binary form.
func appendTime(b []byte, t time.Time) []byte {
	at := len(b)
	b = append(b, 0)
	b, err := t.AppendBinary(b)
	if err != nil { // a zone offset time cannot encode (-1 minute, beyond ±32767): the instant in UTC
		b, _ = t.UTC().AppendBinary(b[:at+1])
	}
	b[at] = byte(len(b) - at - 1)
	return b
}

// errRecordTruncated is the error of a binary record that ends early.
var errRecordTruncated = errors.New("binary record truncated")

// decodeRecord decodes a record of the outbox: the binary form of
// appendRecord, or a JSON record of an earlier version (it starts with
// '{'). It returns an error for anything else, never panics, and checks
// the record (record.check).
func decodeRecord(data []byte) (record, error) {
	var r record
	if len(data) == 0 {
		return r, errors.New("empty record")
	}
	switch data[0] {
	case '{':
		if err := json.Unmarshal(data, &r); err != nil {
			return record{}, fmt.Errorf("JSON record: %w", err)
		}
	case recordV1:
		d := recordDecoder{data: data, s: string(data), pos: 1}
		r = d.record()
		if d.err == nil && d.pos != len(data) {
			d.err = fmt.Errorf("binary record: %d bytes after its end", len(data)-d.pos)
		}
		if d.err != nil {
			return record{}, d.err
		}
	default:
		return r, fmt.Errorf("record of unknown format (first byte %#x)", data[0])
	}
	if err := r.check(); err != nil {
		return record{}, err
	}
	return r, nil
}

// recordDecoder reads a binary record. Its strings are substrings of s,
// one copy of data, so that a record costs one allocation for all of them.
type recordDecoder struct {
	data []byte
	s    string
	pos  int
	err  error
}

// fail records the first error.
func (d *recordDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// byte reads one byte.
func (d *recordDecoder) byte() byte {
	if d.err != nil || d.pos >= len(d.data) {
		d.fail(errRecordTruncated)
		return 0
	}
	v := d.data[d.pos]
	d.pos++
	return v
}

// uvarint reads an unsigned varint.
func (d *recordDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.pos:])
	if n <= 0 {
		if n == 0 {
			d.fail(errRecordTruncated)
		} else {
			d.fail(errors.New("binary record: length overflows"))
		}
		return 0
	}
	d.pos += n
	return v
}

// varint reads a signed varint.
func (d *recordDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.data[d.pos:])
	if n <= 0 {
		d.fail(errRecordTruncated)
		return 0
	}
	d.pos += n
	return v
}

// span reads a length and returns the offsets of that many bytes.
func (d *recordDecoder) span() (int, int) {
	n := d.uvarint()
	if d.err != nil {
		return d.pos, d.pos
	}
	if n > uint64(len(d.data)-d.pos) {
		d.fail(errRecordTruncated)
		return d.pos, d.pos
	}
	start := d.pos
	d.pos += int(n)
	return start, d.pos
}

// string reads a string (a substring of d.s).
func (d *recordDecoder) string() string {
	i, j := d.span()
	return d.s[i:j]
}

// bytes returns a copy of a byte string, nil unless present.
func (d *recordDecoder) bytes(present bool) []byte {
	i, j := d.span()
	if !present || d.err != nil {
		if j > i {
			d.fail(errors.New("binary record: bytes marked absent"))
		}
		return nil
	}
	return append(make([]byte, 0, j-i), d.data[i:j]...)
}

// count reads a slice length (plus one, 0 for nil); each element takes at
// least min bytes, which bounds what a corrupted length can allocate.
func (d *recordDecoder) count(min int) (n int, isNil bool) {
	v := d.uvarint()
	if d.err != nil || v == 0 {
		return 0, d.err == nil
	}
	v--
	if v > uint64((len(d.data)-d.pos)/min) {
		d.fail(errRecordTruncated)
		return 0, false
	}
	return int(v), false
}

// time reads a time of appendTime.
func (d *recordDecoder) time() time.Time {
	var t time.Time
	n := int(d.byte())
	if d.err != nil {
		return t
	}
	if n > len(d.data)-d.pos {
		d.fail(errRecordTruncated)
		return t
	}
	b := d.data[d.pos : d.pos+n]
	if err := t.UnmarshalBinary(b); err != nil {
		d.fail(fmt.Errorf("binary record: %w", err))
	} else if binary.BigEndian.Uint32(b[9:13]) >= 1e9 { // [version, 8 bytes of seconds, 4 of nanoseconds, ...]
		d.fail(errors.New("binary record: time with more than a second of nanoseconds"))
	}
	d.pos += n
	return t
}

// record reads the fields of a binary record after its version byte.
func (d *recordDecoder) record() record {
	var r record
	r.Op = d.byte()
	pres := d.byte()
	if pres&^(hasMsg|hasConn) != 0 {
		d.fail(fmt.Errorf("binary record: unknown presence bits %#x", pres))
	}
	r.Rule = d.string()
	r.Client = d.string()
	if n, isNil := d.count(2); !isNil {
		r.Acks = make([]Ack, n)
		for i := range r.Acks {
			r.Acks[i] = Ack{ID: d.string(), Topic: d.string()}
		}
	}
	if n, isNil := d.count(6); !isNil {
		r.Subs = make([]Subscription, n)
		for i := range r.Subs {
			s := &r.Subs[i]
			s.Filter = d.string()
			s.QoS, s.RetainHandling = d.byte(), d.byte()
			f := d.byte()
			s.NoLocal, s.RetainAsPublished, s.History = f&subNoLocal != 0, f&subRAP != 0, f&subHistory != 0
			s.Identifier = int(d.varint())
			s.Start = d.string()
		}
	}
	if n, isNil := d.count(1); !isNil {
		r.Removed = make([]string, n)
		for i := range r.Removed {
			r.Removed[i] = d.string()
		}
	}
	if pres&hasConn != 0 && d.err == nil {
		c := &Client{ID: d.string(), Username: d.string(), PeerHost: d.string(), Node: d.string()}
		c.Online = d.byte() != 0
		c.OnlineAt, c.OfflineAt = d.time(), d.time()
		r.Conn = c
	}
	if pres&hasMsg != 0 && d.err == nil {
		m := &Message{}
		f, qos, mode := d.byte(), d.byte(), d.byte()
		m.QoS, m.Mode, m.Retain = qos, Mode(mode), f&msgRetain != 0
		if f&msgFormat != 0 {
			pf := d.byte()
			m.Props.PayloadFormat = &pf
		}
		m.ID, m.Topic = d.string(), d.string()
		m.Payload = d.bytes(f&msgPayload != 0)
		m.From, m.Username, m.PeerHost, m.Node = d.string(), d.string(), d.string(), d.string()
		m.Time, m.Expiry = d.time(), d.time()
		m.Props.ContentType, m.Props.ResponseTopic = d.string(), d.string()
		m.Props.CorrelationData = d.bytes(f&msgCorrData != 0)
		if n, isNil := d.count(2); !isNil {
			m.Props.User = make([]UserProperty, n)
			for i := range m.Props.User {
				m.Props.User[i] = UserProperty{Key: d.string(), Value: d.string()}
			}
		}
		r.Msg = m
	}
	return r
}
