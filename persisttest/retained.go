package persisttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

func newRetained(topic string, payload []byte) *persist.Message {
	m := NewMessage(topic, payload)
	m.Retain = true
	return m
}

func byTopic(list []*persist.Message) []*persist.Message {
	out := slices.Clone(list)
	slices.SortStableFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

func (s *suite) testRetained(t *testing.T) {
	t.Run("SetReplaceDelete", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		rl := s.retainLookup(t, st)
		format := byte(1)
		r1 := newRetained("ret/a", []byte("one"))
		r1.From = "p1"
		r1.Props = persist.Properties{PayloadFormat: &format, ContentType: "text/plain", User: []persist.UserProperty{{Key: "k", Value: "v"}}}
		other := newRetained("ret/other", []byte("other"))
		retain(t, st, r1)
		retain(t, st, other)
		got := retained(t, rl, "ret/a")
		if sameIDs(t, "after setting ret/a", got, msgs(r1)) {
			checkMessage(t, "ret/a", got[0], r1, FieldMode)
		}
		r2 := newRetained("ret/a", []byte("two"))
		r2.From = "p2"
		r2.QoS = 2
		retain(t, st, r2)
		got = retained(t, rl, "ret/a")
		if sameIDs(t, "after replacing ret/a (the new message, properties and all)", got, msgs(r2)) {
			checkMessage(t, "ret/a replaced", got[0], r2, FieldMode)
		}
		retain(t, st, newRetained("ret/a", []byte{}))
		sameIDs(t, "after an empty payload deleted ret/a", retained(t, rl, "ret/a"), nil)
		sameIDs(t, "the other retained message", retained(t, rl, "ret/#"), msgs(other))
		retain(t, st, newRetained("ret/other", nil))
		sameIDs(t, "after a nil payload deleted ret/other", retained(t, rl, "ret/#"), nil)
		// Deleting what is not retained is fine; setting again works.
		retain(t, st, newRetained("ret/never", nil))
		r3 := newRetained("ret/a", []byte("three"))
		retain(t, st, r3)
		sameIDs(t, "after setting ret/a again", retained(t, rl, "ret/#"), msgs(r3))
	})
	t.Run("ReplaceWithExpired", func(t *testing.T) {
		// A retained message replaces the one before even when it has
		// already expired; then nothing is retained.
		t.Parallel()
		st := s.store(t)
		rl := s.retainLookup(t, st)
		retain(t, st, newRetained("rexp/t", []byte("old")))
		gone := newRetained("rexp/t", []byte("expired"))
		gone.Expiry = time.Now().Add(-time.Second)
		retain(t, st, gone)
		sameIDs(t, "after replacing with an expired message", retained(t, rl, "rexp/t"), nil)
	})
	t.Run("Wildcards", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		rl := s.retainLookup(t, st)
		all := map[string]*persist.Message{}
		topics := []string{"r/a", "r/b", "r/b/c", "r/B", "rX/a", "r", "r/", "$SYS/r", "r_/a", "r%/a", "r /a", `r\/a`}
		for _, topic := range topics {
			m := newRetained(topic, []byte(topic))
			all[topic] = m
			retain(t, st, m)
		}
		for _, c := range []struct{ filter, why string }{
			{"r/+", ""},
			{"r/#", "'#' matches the parent [MQTT-4.7.1-2]"},
			{"#", "not $SYS/r [MQTT-4.7.2-1]"},
			{"+", "not $SYS/r [MQTT-4.7.2-1]"},
			{"+/a", ""},
			{"$SYS/#", ""},
			{"r/a", "case-sensitive"},
			{"r/B", "case-sensitive"},
			{"r_/+", "'_' is no wildcard"},
			{"r%/+", "'%' is no wildcard"},
			{`r\/+`, ""},
			{"r /a", ""},
			{"nothing/+", ""},
		} {
			var want []*persist.Message
			for _, topic := range topics {
				if specMatch(c.filter, topic) {
					want = append(want, all[topic])
				}
			}
			sameIDs(t, fmt.Sprintf("Retained(%q) %s", c.filter, c.why), retained(t, rl, c.filter), byTopic(want))
		}
	})
	t.Run("Order", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		rl := s.retainLookup(t, st)
		var all []*persist.Message
		for _, topic := range []string{"o/b", "o/B", "o/a", "o/A/x", "o/_", "o/~", "o/é", "o/Z", "o/a/b", "o/a b", "o/a-b", "o/10", "o/9"} {
			m := newRetained(topic, []byte(topic))
			all = append(all, m)
			retain(t, st, m)
		}
		sameIDs(t, "ordered by topic byte-wise (as Go compares strings), not by a collation", retained(t, rl, "o/#"), byTopic(all))
	})
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		rl := s.retainLookup(t, st)
		for i, c := range s.payloads(st) {
			if len(c.payload) == 0 {
				continue // an empty payload deletes
			}
			m := newRetained(fmt.Sprintf("rrt/%d", i), c.payload)
			m.QoS = byte(i % 3)
			m.From = "from-" + c.name
			m.Username, m.PeerHost, m.Node = "user", "192.0.2.9", "node-r"
			m.Time = time.Now().Add(-time.Minute).In(zone)
			m.Expiry = time.Now().Add(time.Hour).In(zone)
			format := byte(i % 2)
			m.Props = persist.Properties{PayloadFormat: &format, ContentType: "ct", ResponseTopic: "resp/t",
				CorrelationData: []byte{0, byte(i)}, User: []persist.UserProperty{{Key: "k", Value: "1"}, {Key: "k", Value: "0"}}}
			retain(t, st, m)
			got := retained(t, rl, m.Topic)
			if sameIDs(t, c.name, got, msgs(m)) {
				checkMessage(t, c.name, got[0], m, FieldMode)
			}
		}
	})
	t.Run("AwkwardTopics", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		rl := s.retainLookup(t, st)
		control := newRetained("control/r", []byte("control"))
		retain(t, st, control)
		var all []*persist.Message
		for _, a := range awkward {
			m := newRetained(a.value, []byte(a.name))
			m.From = a.value
			all = append(all, m)
			retain(t, st, m)
		}
		for i, a := range awkward {
			got := retained(t, rl, a.value)
			if sameIDs(t, fmt.Sprintf("Retained(%s topic %q)", a.name, a.value), got, all[i:i+1]) {
				checkMessage(t, a.name, got[0], all[i], FieldMode)
			}
		}
		sameIDs(t, "the control message after the injection attempts", retained(t, rl, "control/r"), msgs(control))
		var want []*persist.Message
		for _, m := range all {
			if !strings.HasPrefix(m.Topic, "$") {
				want = append(want, m)
			}
		}
		want = append(want, control)
		sameIDs(t, "Retained(#)", retained(t, rl, "#"), byTopic(want))
	})
}

// specMatch reports whether an MQTT filter matches a topic name, by the
// spec: '+' matches one level (also an empty one), '#' the rest including
// the parent level [MQTT-4.7.1-2], and a filter starting with a wildcard
// matches no name starting with '$' [MQTT-4.7.2-1]. It is only used on
// valid, non-shared filters.
func specMatch(filter, name string) bool {
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, n := strings.Split(filter, "/"), strings.Split(name, "/")
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(n) {
			return false
		}
		if fl != "+" && fl != n[i] {
			return false
		}
	}
	return len(f) == len(n)
}
