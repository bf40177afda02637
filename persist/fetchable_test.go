package persist_test

import (
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

func TestRouterFetchable(t *testing.T) {
	s, ts := newRec("db"), newRec("tsdb")
	r, err := persist.NewRouter(
		persist.Rule{Name: "queue", Filter: "queue/#", Store: s, Mode: persist.Queue},
		persist.Rule{Name: "fanout", Filter: "#", Store: s},
		persist.Rule{Name: "points", Filter: "sensor/#", Store: ts, Events: persist.OnPublish, QoS0: true},
		persist.Rule{Name: "qos0", Filter: "zero/#", Store: s, QoS0: true},
		persist.Rule{Name: "nofetch", Filter: "$x/#", Store: s, Events: persist.OnPublish},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		qos  byte
		mode persist.Mode
		ok   bool
	}{
		{"queue/a", 1, persist.Queue, true},
		{"queue", 2, persist.Queue, true}, // "queue/#" matches its parent [MQTT-4.7.1-2]
		{"a/b", 1, persist.Fanout, true},
		{"a/b", 0, 0, false},      // no rule stores QoS 0 here
		{"queue/a", 0, 0, false},  // nor here
		{"sensor/1", 0, 0, false}, // stored (tsdb), but nothing fetches it back
		{"sensor/1", 1, persist.Fanout, true},
		{"zero/a", 0, persist.Fanout, true},
		{"$x/a", 1, 0, false}, // stored, but no fetch rule matches a $ topic
	} {
		mode, ok := r.Fetchable(c.name, c.qos)
		if ok != c.ok || mode != c.mode {
			t.Errorf("Fetchable(%q, %d) = %v, %v; want %v, %v", c.name, c.qos, mode, ok, c.mode, c.ok)
		}
	}

	// A fetch rule of another mode for the same store does not read the
	// message back.
	r2, err := persist.NewRouter(
		persist.Rule{Filter: "q/#", Store: s, Mode: persist.Queue, Events: persist.OnPublish},
		persist.Rule{Filter: "#", Store: s, Events: persist.OnFetch},
	)
	if err != nil {
		t.Fatal(err)
	}
	if mode, ok := r2.Fetchable("q/1", 1); ok {
		t.Errorf("Fetchable with only a fanout fetch rule = %v, true; want false", mode)
	}
	_ = r.Close()
	if _, ok := r.Fetchable("a/b", 1); ok {
		t.Error("Fetchable after Close = true")
	}
}
