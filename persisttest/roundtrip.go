package persisttest

import (
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// payloads are payloads that must round-trip byte for byte.
func (s *suite) payloads(st persist.Store) []struct {
	name    string
	payload []byte
	want    []byte
} {
	big := s.maxPayload(st)
	return []struct {
		name    string
		payload []byte
		want    []byte
	}{
		{"empty", []byte{}, []byte{}},
		{"nil", nil, []byte{}},
		{"text", []byte("hello, world"), nil},
		{"json", []byte(`{"temp":21.5,"unit":"°C","q":"it's \"x\""}`), nil},
		{"all byte values", allBytes(), nil},
		{"invalid UTF-8", []byte("\xff\xfe\xc3\x28\xed\xa0\x80\xf8\x88\x80\x80\x80"), nil},
		{"NUL bytes", []byte("\x00a\x00\x00b\x00"), nil},
		{"only NUL", []byte{0}, nil},
		{"trailing spaces", []byte("a   "), nil},
		{"CR LF", []byte("\r\n\r\n"), nil},
		{"base64-looking", []byte("aGVsbG8="), nil},
		{"hex-looking", []byte("\\x68656c6c6f"), nil},
		{fmt.Sprintf("random %d bytes", big), randomBytes(big), nil},
	}
}

func (s *suite) testRoundTrip(t *testing.T) {
	t.Run("Payloads", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			cases := s.payloads(st)
			var all []*persist.Message
			for i, c := range cases {
				m := NewMessage(fmt.Sprintf("payload/%d", i), c.payload)
				m.Mode = mode
				all = append(all, m)
			}
			publish(t, st, all...)
			for i, c := range cases {
				got := s.read(t, st, "reader", all[i].Topic, mode)
				if len(got) != 1 {
					t.Errorf("%s: FetchOffline(%q) returned %d messages, want 1", c.name, all[i].Topic, len(got))
					continue
				}
				want := all[i].Clone()
				if c.want != nil {
					want.Payload = c.want
				}
				checkMessage(t, c.name, got[0], want, s.ignored(true))
			}
		})
	})
	t.Run("Fields", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			utf8, binary := byte(1), byte(0)
			full := NewMessage("fields/full", []byte("full"))
			full.QoS = 2
			full.Retain = true
			full.From = "publisher-1"
			full.Username = "user-ü'\""
			full.PeerHost = "[2001:db8::1]:1883"
			full.Node = "node-a@10.0.0.1"
			full.Time = time.Now().Add(-3 * time.Second).In(zone)
			full.Expiry = time.Now().Add(time.Hour).In(zone)
			full.Props = persist.Properties{
				PayloadFormat:   &utf8,
				ContentType:     "application/json; charset=utf-8",
				ResponseTopic:   "reply/to/传感器",
				CorrelationData: []byte("\x00\x01corr\xff"),
				User: []persist.UserProperty{
					{Key: "k", Value: "v1"},
					{Key: "a", Value: ""},
					{Key: "k", Value: "v2"},
					{Key: "k", Value: "v1"},
					{Key: "", Value: "empty key"},
					{Key: "quote'\"", Value: "line\nbreak 😀"},
				},
			}
			bare := NewMessage("fields/bare", []byte("bare"))
			bare.QoS = 0
			zeroFormat := NewMessage("fields/zero-format", []byte("\x00"))
			zeroFormat.Props.PayloadFormat = &binary
			zeroFormat.QoS = 1
			oneProp := NewMessage("fields/one-user-prop", []byte("x"))
			oneProp.Props.User = []persist.UserProperty{{Key: "only", Value: "one"}}
			// The longest MQTT 5 Message Expiry Interval, 2^32-1 seconds
			// (year 2162): past a 32-bit TIMESTAMP.
			maxExpiry := NewMessage("fields/max-expiry", []byte("x"))
			maxExpiry.Expiry = maxExpiry.Time.Add(4294967295 * time.Second)
			list := withMode(mode, full, bare, zeroFormat, oneProp, maxExpiry)
			publish(t, st, list...)
			for _, want := range list {
				got := s.read(t, st, "reader", want.Topic, mode)
				if len(got) != 1 {
					t.Errorf("FetchOffline(%q) returned %d messages, want 1", want.Topic, len(got))
					continue
				}
				checkMessage(t, want.Topic, got[0], want, s.ignored(true))
			}
		})
	})
	t.Run("Topics", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			control := NewMessage("control/1", []byte("control"))
			control.Mode = mode
			publish(t, st, control)
			var all []*persist.Message
			for _, a := range awkward {
				m := NewMessage(a.value, []byte(a.name))
				m.Mode = mode
				m.From = a.value
				all = append(all, m)
			}
			publish(t, st, all...)
			for i, a := range awkward {
				got := s.read(t, st, "reader", a.value, mode)
				if !sameIDs(t, fmt.Sprintf("FetchOffline(%s topic %q)", a.name, a.value), got, all[i:i+1]) {
					continue
				}
				checkMessage(t, a.name, got[0], all[i], s.ignored(true))
			}
			got := s.read(t, st, "reader", "control/1", mode)
			sameIDs(t, "the control message after the injection attempts", got, msgs(control))
		})
	})
	t.Run("ClientIDs", func(t *testing.T) {
		s.need(t, persist.OnFetch|persist.OnAcked)
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			if mode == persist.Queue {
				// Each awkward client claims one message and acks it;
				// nothing is left, and nothing was claimed twice.
				all := series(mode, "cid/q", len(awkward))
				publish(t, st, all...)
				for i, a := range awkward {
					got := fetch(t, st, a.value, "cid/q", persist.Fetch{Mode: mode, Limit: 1})
					if sameIDs(t, "claim by client "+a.name, got, all[i:i+1]) {
						ack(t, st, a.value, got...)
					}
				}
				sameIDs(t, "after every client acked its claim", fetch(t, st, "reader", "cid/q", persist.Fetch{Mode: mode}), nil)
				return
			}
			// Fanout: each client has its own acks; acks by one client
			// are not another's, also when their IDs differ
			// only in case or spaces (neighbours in awkward ack
			// different messages).
			all := series(mode, "cid/f", 3)
			publish(t, st, all...)
			for i, a := range awkward {
				got := fetch(t, st, a.value, "cid/f", persist.Fetch{Mode: mode})
				if sameIDs(t, "client "+a.name+" before its ack", got, all) {
					ack(t, st, a.value, got[i%2])
				}
			}
			for i, a := range awkward {
				got := fetch(t, st, a.value, "cid/f", persist.Fetch{Mode: mode})
				want := slices.Delete(slices.Clone(all), i%2, i%2+1)
				sameIDs(t, fmt.Sprintf("client %s after acking message %d", a.name, i%2), got, want)
			}
			sameIDs(t, "a client that acked nothing", fetch(t, st, "control", "cid/f", persist.Fetch{Mode: mode}), all)
		})
	})
}
