package persist

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fullRecords returns records that set every field a record and what it
// holds can carry, in both the forms of an optional one.
func fullRecords() []record {
	pf := byte(1)
	at := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	msg := &Message{
		ID: "01JDZ0000000000000000000AA", Topic: "a/b\r\n/ü", Payload: []byte{7, 0, 0xff, '{'},
		QoS: 2, Retain: true, From: "pub", Username: "user", PeerHost: "10.0.0.1", Node: "n1",
		Time: at, Expiry: at.Add(time.Hour), Mode: Queue,
		Props: Properties{PayloadFormat: &pf, ContentType: "application/json", ResponseTopic: "re/t",
			CorrelationData: []byte{9, 8, 7}, User: []UserProperty{{"k", "v"}, {"k", "v"}, {"", ""}}},
	}
	return []record{
		{Op: opPublish, Msg: msg, Rule: "rule-1", Client: "c", Acks: []Ack{{ID: "x", Topic: "y"}},
			Conn: &Client{ID: "c1", Username: "u", PeerHost: "h", Node: "n", Online: true, OnlineAt: at, OfflineAt: at.Add(time.Second)},
			Subs: []Subscription{{Filter: "$share/g/a/+", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2,
				Identifier: 268435455, History: true, Start: "01JDZ0000000000000000000A0"}},
			Removed: []string{"old/#", ""}},
		{Op: opRetain, Msg: &Message{ID: "i", Topic: "t", Payload: []byte{}, Props: Properties{CorrelationData: []byte{}, User: []UserProperty{}}}},
		{Op: opPublish, Msg: &Message{ID: "i", Topic: "t"}},
		{Op: opAcked, Client: "c", Acks: []Ack{{ID: "1", Topic: "t"}, {ID: "2", Topic: "t"}}},
		{Op: opConnected, Conn: &Client{ID: "c"}},
		{Op: opSubscribed, Client: "c", Subs: []Subscription{}, Removed: []string{}},
		{Op: opSubscribed, Client: "c", Subs: []Subscription{{Filter: "a", Identifier: -1}}},
	}
}

// nonZero fails the test for every exported field of v (a struct, through
// pointers, slices and nested structs) left at its zero value, so that a
// field added to Message, Client, Subscription or Ack is added here, and to
// the binary record.
func nonZero(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			t.Errorf("%s is nil", path)
			return
		}
		nonZero(t, path, v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			if v.Interface().(time.Time).IsZero() {
				t.Errorf("%s is zero", path)
			}
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				nonZero(t, path+"."+f.Name, v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			t.Errorf("%s is empty", path)
			return
		}
		nonZero(t, path+"[0]", v.Index(0))
	default:
		if v.IsZero() {
			t.Errorf("%s is zero", path)
		}
	}
}

// Every field of a record round-trips through the binary form, nil and
// empty slices apart.
func TestRecordRoundTrip(t *testing.T) {
	recs := fullRecords()
	nonZero(t, "record", reflect.ValueOf(recs[0]))
	for i, r := range recs {
		data := appendRecord(nil, &r)
		if data[0] != recordV1 {
			t.Fatalf("record %d starts with %#x", i, data[0])
		}
		if n := recordSize(&r); len(data) > n {
			t.Errorf("record %d: %d bytes, recordSize says %d", i, len(data), n)
		}
		got, err := decodeRecord(data)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("record %d:\n got %#v\nwant %#v", i, got, r)
		}
		if got.Msg != nil && r.Msg.Payload != nil && len(r.Msg.Payload) > 0 {
			got.Msg.Payload[0]++ // a copy, not the record's bytes
			if again, _ := decodeRecord(data); !reflect.DeepEqual(again, r) {
				t.Errorf("record %d: the decoded payload shares the encoded bytes", i)
			}
		}
	}
}

// Times keep their instant and zone offset; Local ones (what the broker
// gives) stay Local.
func TestRecordTimes(t *testing.T) {
	for _, at := range []time.Time{
		time.Now(),
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 5*3600+30*60)),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Hour),
		time.Unix(1<<40, 999999999),
	} {
		r := record{Op: opPublish, Msg: &Message{ID: "i", Topic: "t", Time: at, Expiry: at}}
		got, err := decodeRecord(appendRecord(nil, &r))
		if err != nil {
			t.Fatal(err)
		}
		_, off := at.Zone()
		_, goff := got.Msg.Time.Zone()
		if !got.Msg.Time.Equal(at) || goff != off || !got.Msg.Expiry.Equal(at) {
			t.Errorf("time %v came back as %v (offset %d, want %d)", at, got.Msg.Time, goff, off)
		}
		if at.Location() == time.Local && got.Msg.Time.Location() != time.Local {
			t.Errorf("local time %v came back in %v", at, got.Msg.Time.Location())
		}
	}
}

// JSON records (of earlier versions) still decode as they did.
func TestRecordDecodesJSON(t *testing.T) {
	for i, r := range fullRecords() {
		data, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		var want record
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(data)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("record %d:\n got %#v\nwant %#v", i, got, want)
		}
	}
}

// checkCorrupt decodes data, which must not panic; it fails the test when
// a decoded record does not encode to an equal one again, or an error does
// not say it is about a record.
func checkCorrupt(t *testing.T, data []byte) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("decodeRecord(%x) panicked: %v", data, p)
		}
	}()
	r, err := decodeRecord(data)
	if err != nil {
		if !strings.Contains(err.Error(), "record") && !strings.Contains(err.Error(), "operation") &&
			!strings.HasPrefix(err.Error(), "no ") {
			t.Errorf("decodeRecord(%x): unclear error %q", data, err)
		}
		return
	}
	if data[0] != recordV1 {
		return
	}
	again, err := decodeRecord(appendRecord(nil, &r))
	if err != nil || !reflect.DeepEqual(again, r) {
		t.Errorf("decodeRecord(%x) = %#v, which does not encode back (%v)", data, r, err)
	}
}

// A corrupted binary record gives an error (or another record), never a
// panic; a truncated one is always an error.
func TestRecordCorrupt(t *testing.T) {
	for i, r := range fullRecords() {
		data := appendRecord(nil, &r)
		for n := range len(data) {
			if _, err := decodeRecord(data[:n]); err == nil {
				t.Errorf("record %d truncated to %d of %d bytes decoded", i, n, len(data))
			}
		}
		if _, err := decodeRecord(append(bytes.Clone(data), 0)); err == nil {
			t.Errorf("record %d with a byte after its end decoded", i)
		}
		for pos := range data {
			for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, data[pos] ^ 0x01} {
				c := bytes.Clone(data)
				c[pos] = v
				checkCorrupt(t, c)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		c := make([]byte, 1+rng.IntN(64))
		for i := range c {
			c[i] = byte(rng.Uint32())
		}
		c[0] = recordV1
		checkCorrupt(t, c)
	}
	for _, c := range [][]byte{{}, {0}, {'{'}, []byte(`{"o":1}`), []byte(`{"o":112}`), {0x02, 'p', 0}} {
		if _, err := decodeRecord(c); err == nil {
			t.Errorf("decodeRecord(%q) gave no error", c)
		}
	}
}

// FuzzDecodeRecord checks that no input makes decodeRecord panic.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range fullRecords() {
		f.Add(appendRecord(nil, &r))
		j, _ := json.Marshal(&r)
		f.Add(j)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkCorrupt(t, data) })
}

// BenchmarkRecord encodes and decodes the outbox record of a typical
// publish (64-byte payload, no MQTT 5 properties): as JSON (the records of
// earlier versions) and in the binary form.
func BenchmarkRecord(b *testing.B) {
	m := &Message{ID: NewID(), Topic: "bench/device/17/temp", Payload: bytes.Repeat([]byte{'x'}, 64), QoS: 1,
		From: "publisher-3", PeerHost: "127.0.0.1", Node: "node-a", Time: time.Now()}
	r := record{Op: opPublish, Msg: m, Rule: "default"}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data, err := json.Marshal(&r)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := decodeRecord(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data := appendRecord(make([]byte, 0, recordSize(&r)), &r)
			if _, err := decodeRecord(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A time whose zone offset time.Time cannot encode keeps its instant.
func TestRecordOddZone(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("odd", -60))
	r := record{Op: opPublish, Msg: &Message{ID: "i", Topic: "t", Time: at}}
	got, err := decodeRecord(appendRecord(nil, &r))
	if err != nil || !got.Msg.Time.Equal(at) {
		t.Fatalf("decoded %v, %v; want the instant of %v", got.Msg, err, at)
	}
}
