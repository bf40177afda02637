package mongostore

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Fields of a message document (mqtt_msg) and of a retained document
// (mqtt_retain): the seeds' first, then this package's.
const (
	fID         = "_id" // the message ID (mqtt_msg)
	fMsgID      = "msgid"
	fTopic      = "topic"
	fSender     = "sender"
	fQoS        = "qos"
	fRetain     = "retain"
	fPayload    = "payload"
	fArrived    = "arrived"     // Message.Time in Unix seconds, as the seeds
	fArrivedMs  = "arrived_ms"  // Message.Time in Unix milliseconds
	fPayloadRaw = "payload_raw" // the exact bytes of a payload kept as a document, when it does not give them back
	fExpireAt   = "expire_at"   // Message.Expiry (a date; absent: never); TTL indexes delete at it
	fStored     = "stored"      // when Publish wrote the message (a date): its position (see # Skip nothing)
	fMode       = "mode"        // "fanout" or "queue"
	fUsername   = "username"
	fPeerHost   = "peerhost"
	fNode       = "node"
	fProps      = "props" // MQTT 5 properties (absent: none)
)

// Fields of the properties subdocument.
const (
	pFormat      = "format"
	pContentType = "content_type"
	pRespTopic   = "response_topic"
	pCorrelation = "correlation"
	pUser        = "user" // [{k, v}, …] in order
)

// subtypeNUL marks a binary value that stands for a string holding
// U+0000, which a server on PostgreSQL (FerretDB) cannot keep as a string.
const subtypeNUL = 0x80

// text returns s as a BSON value: a string, or binary when it holds
// U+0000.
func text(s string) any {
	if strings.IndexByte(s, 0) >= 0 {
		return bson.Binary{Subtype: subtypeNUL, Data: []byte(s)}
	}
	return s
}

// textOf reads a value written by text.
func textOf(v bson.RawValue) string {
	switch v.Type {
	case bson.TypeString:
		return v.StringValue()
	case bson.TypeBinary:
		_, b := v.Binary()
		return string(b)
	}
	return ""
}

// maxPayloadDoc is the largest payload kept as a document beside its raw
// bytes: a document stays below 16 MiB.
const maxPayloadDoc = 7 << 20

// payload returns the payload field of p for format f, and the raw bytes
// to keep beside it (nil: none).
func payload(p []byte, f PayloadFormat) (v any, raw []byte) {
	if f == MongoJSON {
		if doc, exact, err := jsonDocument(p); err == nil {
			switch {
			case exact:
				return doc, nil
			case len(p) <= maxPayloadDoc:
				return doc, p
			}
		}
	}
	if utf8.Valid(p) && bytes.IndexByte(p, 0) < 0 {
		return string(p), nil
	}
	return bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: p}, nil
}

// payloadOf reads the payload of a document: the raw bytes when kept,
// else the field as payload wrote it.
func payloadOf(v, raw bson.RawValue) []byte {
	if raw.Type == bson.TypeBinary {
		_, b := raw.Binary()
		return append([]byte{}, b...)
	}
	switch v.Type {
	case bson.TypeString:
		return []byte(v.StringValue())
	case bson.TypeBinary:
		_, b := v.Binary()
		return append([]byte{}, b...)
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		var b bytes.Buffer
		if encodeJSON(&b, v) == nil {
			return b.Bytes()
		}
	}
	return []byte{}
}

// props returns the properties subdocument of p, or nil when p has none.
func props(p *persist.Properties) bson.D {
	if p.IsZero() {
		return nil
	}
	var d bson.D
	if p.PayloadFormat != nil {
		d = append(d, bson.E{Key: pFormat, Value: int32(*p.PayloadFormat)})
	}
	if p.ContentType != "" {
		d = append(d, bson.E{Key: pContentType, Value: text(p.ContentType)})
	}
	if p.ResponseTopic != "" {
		d = append(d, bson.E{Key: pRespTopic, Value: text(p.ResponseTopic)})
	}
	if p.CorrelationData != nil {
		d = append(d, bson.E{Key: pCorrelation, Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: p.CorrelationData}})
	}
	if len(p.User) > 0 {
		up := make(bson.A, len(p.User))
		for i, u := range p.User {
			up[i] = bson.D{{Key: "k", Value: text(u.Key)}, {Key: "v", Value: text(u.Value)}}
		}
		d = append(d, bson.E{Key: pUser, Value: up})
	}
	return d
}

// propsOf reads a properties subdocument.
func propsOf(v bson.RawValue) persist.Properties {
	var p persist.Properties
	if v.Type != bson.TypeEmbeddedDocument {
		return p
	}
	elems, _ := v.Document().Elements()
	for _, e := range elems {
		x := e.Value()
		switch e.Key() {
		case pFormat:
			if n, ok := x.AsInt64OK(); ok {
				b := byte(n)
				p.PayloadFormat = &b
			}
		case pContentType:
			p.ContentType = textOf(x)
		case pRespTopic:
			p.ResponseTopic = textOf(x)
		case pCorrelation:
			if x.Type == bson.TypeBinary {
				_, b := x.Binary()
				p.CorrelationData = append([]byte{}, b...)
			}
		case pUser:
			if x.Type != bson.TypeArray {
				continue
			}
			vals, _ := x.Array().Values()
			for _, u := range vals {
				if u.Type != bson.TypeEmbeddedDocument {
					continue
				}
				d := u.Document()
				p.User = append(p.User, persist.UserProperty{Key: textOf(d.Lookup("k")), Value: textOf(d.Lookup("v"))})
			}
		}
	}
	return p
}

// messageFields appends the fields a message document and a retained
// document share (all but _id, stored and mode) to d.
func messageFields(d bson.D, m *persist.Message, f PayloadFormat) bson.D {
	pv, raw := payload(m.Payload, f)
	d = append(d,
		bson.E{Key: fMsgID, Value: m.ID},
		bson.E{Key: fTopic, Value: m.Topic},
		bson.E{Key: fSender, Value: m.From},
		bson.E{Key: fQoS, Value: int32(m.QoS)},
		bson.E{Key: fRetain, Value: m.Retain},
		bson.E{Key: fPayload, Value: pv},
	)
	if raw != nil {
		d = append(d, bson.E{Key: fPayloadRaw, Value: bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: raw}})
	}
	if !m.Time.IsZero() {
		d = append(d, bson.E{Key: fArrived, Value: m.Time.Unix()}, bson.E{Key: fArrivedMs, Value: m.Time.UnixMilli()})
	}
	if !m.Expiry.IsZero() {
		d = append(d, bson.E{Key: fExpireAt, Value: bson.NewDateTimeFromTime(m.Expiry)})
	}
	for _, x := range [...]struct{ k, v string }{{fUsername, m.Username}, {fPeerHost, m.PeerHost}, {fNode, m.Node}} {
		if x.v != "" {
			d = append(d, bson.E{Key: x.k, Value: x.v})
		}
	}
	if p := props(&m.Props); p != nil {
		d = append(d, bson.E{Key: fProps, Value: p})
	}
	return d
}

// messageDoc returns the mqtt_msg document of m, stamped stored.
func messageDoc(m *persist.Message, stored time.Time, f PayloadFormat) bson.D {
	d := make(bson.D, 0, 18)
	d = append(d, bson.E{Key: fID, Value: m.ID})
	d = messageFields(d, m, f)
	d = append(d,
		bson.E{Key: fStored, Value: bson.NewDateTimeFromTime(stored)},
		bson.E{Key: fMode, Value: m.Mode.String()},
	)
	return bucketFields(d, fStored, stored)
}

// stored is a message as read back, with its position.
type stored struct {
	m      *persist.Message
	stored time.Time // the Publish stamp (zero in a retained document)
}

// decodeMessage reads a message or retained document. A retained
// document's Retain is true whatever its retain field says.
func decodeMessage(raw bson.Raw) (stored, error) {
	elems, err := raw.Elements()
	if err != nil {
		return stored{}, err
	}
	m := &persist.Message{}
	var st time.Time
	var pv, praw bson.RawValue
	var arrived, arrivedMs int64
	for _, e := range elems {
		v := e.Value()
		switch e.Key() {
		case fMsgID:
			m.ID = textOf(v)
		case fTopic:
			m.Topic = textOf(v)
		case fSender:
			m.From = textOf(v)
		case fQoS:
			if n, ok := v.AsInt64OK(); ok {
				m.QoS = byte(n)
			}
		case fRetain:
			if b, ok := v.BooleanOK(); ok {
				m.Retain = b
			} else if n, ok := v.AsInt64OK(); ok {
				m.Retain = n != 0
			}
		case fPayload:
			pv = v
		case fPayloadRaw:
			praw = v
		case fArrived:
			arrived, _ = v.AsInt64OK()
		case fArrivedMs:
			arrivedMs, _ = v.AsInt64OK()
		case fExpireAt:
			if dt, ok := v.DateTimeOK(); ok {
				m.Expiry = time.UnixMilli(dt)
			}
		case fStored:
			if dt, ok := v.DateTimeOK(); ok {
				st = time.UnixMilli(dt)
			}
		case fMode:
			if textOf(v) == "queue" {
				m.Mode = persist.Queue
			}
		case fUsername:
			m.Username = textOf(v)
		case fPeerHost:
			m.PeerHost = textOf(v)
		case fNode:
			m.Node = textOf(v)
		case fProps:
			m.Props = propsOf(v)
		}
	}
	m.Payload = payloadOf(pv, praw)
	switch {
	case arrivedMs != 0:
		m.Time = time.UnixMilli(arrivedMs)
	case arrived != 0:
		m.Time = time.Unix(arrived, 0)
	}
	return stored{m: m, stored: st}, nil
}
