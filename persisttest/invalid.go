package persisttest

import (
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

// invalidNames are not valid topic names of a PUBLISH.
var invalidNames = []named{
	{"empty", ""},                          // [MQTT-4.7.3-1]
	{"plus", "a/+"},                        // [MQTT-3.3.2-2]
	{"plus inside a level", "a+b"},         // [MQTT-3.3.2-2]
	{"hash", "a/#"},                        // [MQTT-3.3.2-2]
	{"hash alone", "#"},                    // [MQTT-3.3.2-2]
	{"NUL", "a\x00b"},                      // [MQTT-4.7.3-2]
	{"invalid UTF-8", "a/\xff\xfe"},        // [MQTT-1.5.4-1]
	{"UTF-16 surrogate", "a/\xed\xa0\x80"}, // [MQTT-1.5.4-1]
	{"overlong encoding", "a/\xc0\xaf"},    // [MQTT-1.5.4-1]
}

// invalidFilters are not valid subscription filters.
var invalidFilters = []named{
	{"empty", ""},                           // [MQTT-4.7.3-1]
	{"hash not last", "a/#/b"},              // [MQTT-4.7.1-2]
	{"hash inside a level", "a/b#"},         // [MQTT-4.7.1-2]
	{"hash first of two", "#/a"},            // [MQTT-4.7.1-2]
	{"plus inside a level", "a+/b"},         // [MQTT-4.7.1-3]
	{"plus after text", "a/b+"},             // [MQTT-4.7.1-3]
	{"NUL", "a/\x00"},                       // [MQTT-4.7.3-2]
	{"invalid UTF-8", "\xff/#"},             // [MQTT-1.5.4-1]
	{"share without filter", "$share/g"},    // [MQTT-4.8.2-2]
	{"share with empty group", "$share//a"}, // [MQTT-4.8.2-1]
}

func (s *suite) testInvalid(t *testing.T) {
	t.Run("PublishTopic", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			for _, c := range invalidNames {
				ok1 := NewMessage("inv/ok", []byte("before "+c.name))
				bad := NewMessage(c.value, []byte(c.name))
				ok2 := NewMessage("inv/ok", []byte("after "+c.name))
				withMode(mode, ok1, bad, ok2)
				err := st.Publish(t.Context(), ok1, bad, ok2)
				wantErr(t, "Publish of a batch with a topic that is "+c.name, err, persist.ErrInvalid)
				if persist.IsRetryable(err) {
					t.Errorf("Publish of a batch with a topic that is %s: %v is retryable", c.name, err)
				}
			}
			// The whole batch is rejected before anything is written.
			sameIDs(t, "valid messages of the rejected batches", fetch(t, st, "c", "#", persist.Fetch{Mode: mode}), nil)
		})
	})
	t.Run("FetchFilter", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			for _, c := range invalidFilters {
				got, err := st.FetchOffline(t.Context(), "c", c.value, persist.Fetch{Mode: mode})
				if wantErr(t, "FetchOffline with a filter that is "+c.name+" ("+c.value+")", err, persist.ErrInvalid) && len(got) > 0 {
					t.Errorf("FetchOffline(%q) returned messages with its error", c.value)
				}
			}
		})
	})
	t.Run("SubscribedFilter", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		for _, c := range invalidFilters {
			subs := []persist.Subscription{{Filter: "inv/ok", QoS: 1}, {Filter: c.value, QoS: 1}}
			wantErr(t, "Subscribed with a filter that is "+c.name, st.Subscribed(t.Context(), "c", subs, nil), persist.ErrInvalid)
		}
		sl := s.subLookup(t, st)
		checkSubs(t, "after the rejected calls (nothing of them is stored)", sl, "c", nil)
	})
	t.Run("RetainTopic", func(t *testing.T) {
		t.Parallel()
		if s.h.Features.NoRetain {
			skipLack(t, "NoRetain")
		}
		st := s.store(t)
		for _, c := range invalidNames {
			wantErr(t, "Retain to a topic that is "+c.name, st.Retain(t.Context(), newRetained(c.value, []byte("x"))), persist.ErrInvalid)
		}
		rl := s.retainLookup(t, st)
		for _, c := range invalidFilters {
			_, err := rl.Retained(t.Context(), c.value)
			wantErr(t, "Retained with a filter that is "+c.name, err, persist.ErrInvalid)
		}
	})
}

// testUnsupported checks that a store asked for what it declares it lacks
// says so with ErrUnsupported instead of pretending.
func (s *suite) testUnsupported(t *testing.T) {
	f := s.h.Features
	st := s.store(t)
	for _, m := range s.modes() {
		if m.lack == "" {
			continue
		}
		_, err := st.FetchOffline(t.Context(), "c", "a/b", persist.Fetch{Mode: m.mode})
		wantErr(t, "FetchOffline("+modeName(m.mode)+") of a store declaring "+m.lack, err, persist.ErrUnsupported)
	}
	if f.NoRetain {
		wantErr(t, "Retain of a store declaring NoRetain", st.Retain(t.Context(), newRetained("a/b", []byte("x"))), persist.ErrUnsupported)
	}
}
