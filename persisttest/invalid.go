package persisttest

import (
	"errors"
	"strings"
	"testing"
	"time"

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

// maxLen returns the longest string a limit allows: the limit, or
// persist.MaxString for none.
func maxLen(limit int) int {
	if limit <= 0 || limit > persist.MaxString {
		return persist.MaxString
	}
	return limit
}

// badID is a client ID that is not valid, and the IDs a store that
// mangled it (cut it at the NUL or the limit, replaced the bad bytes)
// would have written instead: none of them is to be stored.
type badID struct {
	name, id string
	mangled  []string
}

// badIDs returns the invalid client IDs, made from the valid prefix p
// for a store of limits l [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-3.1.3-5].
func badIDs(p string, l persist.Limits) []badID {
	long := p + strings.Repeat("x", maxLen(l.ClientID)+1-len(p))
	return []badID{
		{"empty", "", nil},
		{"NUL", p + "\x00x", []string{p, p + "x", p + " x"}},
		{"invalid UTF-8", p + "\xff", []string{p, p + "\uFFFD"}},
		{"too long", long, []string{long[:maxLen(l.ClientID)]}},
	}
}

// badTexts are the strings a store refuses in From, Username, PeerHost
// and Node [MQTT-1.5.4-1] [MQTT-1.5.4-2], for a store of limits l.
func badTexts(l persist.Limits) []named {
	return []named{
		{"NUL", "a\x00b"},
		{"invalid UTF-8", "a\xffb"},
		{"too long", strings.Repeat("t", maxLen(l.Text)+1)},
	}
}

func (s *suite) testInvalid(t *testing.T) {
	t.Run("PublishTopic", func(t *testing.T) {
		s.need(t, persist.OnPublish)
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			for _, c := range invalidNames {
				ok1 := NewMessage("inv/ok", []byte("before "+c.name))
				bad := NewMessage(c.value, []byte(c.name))
				ok2 := NewMessage("inv/ok", []byte("after "+c.name))
				withMode(mode, ok1, bad, ok2)
				err := st.Publish(t.Context(), ok1, bad, ok2)
				wantInvalid(t, "Publish of a batch with a topic that is "+c.name, err)
			}
			// The whole batch is rejected before anything is written.
			sameIDs(t, "valid messages of the rejected batches", s.read(t, st, "c", "#", mode), nil)
		})
	})
	t.Run("FetchFilter", func(t *testing.T) {
		s.need(t, persist.OnFetch)
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			for _, c := range invalidFilters {
				got, err := st.FetchOffline(t.Context(), "c", c.value, persist.Fetch{Mode: mode})
				if wantInvalid(t, "FetchOffline with a filter that is "+c.name+" ("+c.value+")", err) && len(got) > 0 {
					t.Errorf("FetchOffline(%q) returned messages with its error", c.value)
				}
			}
		})
	})
	t.Run("SubscribedFilter", func(t *testing.T) {
		t.Parallel()
		s.need(t, persist.OnSubscribed)
		st := s.store(t)
		for _, c := range invalidFilters {
			subs := []persist.Subscription{{Filter: "inv/ok", QoS: 1}, {Filter: c.value, QoS: 1}}
			wantInvalid(t, "Subscribed with a filter that is "+c.name, st.Subscribed(t.Context(), "c", subs, nil))
		}
		sl := s.subLookup(t, st)
		checkSubs(t, "after the rejected calls (nothing of them is stored)", sl, "c", nil)
	})
	t.Run("RetainTopic", func(t *testing.T) {
		t.Parallel()
		s.need(t, persist.OnRetain)
		st := s.store(t)
		for _, c := range invalidNames {
			wantInvalid(t, "Retain to a topic that is "+c.name, st.Retain(t.Context(), newRetained(c.value, []byte("x"))))
		}
		rl := s.retainLookup(t, st)
		for _, c := range invalidFilters {
			_, err := rl.Retained(t.Context(), c.value)
			wantInvalid(t, "Retained with a filter that is "+c.name, err)
		}
	})
	// Every other input of every verb and lookup. Each group uses one
	// store; each bad input is a subtest, and after it what the store
	// holds is read back where the store can: nothing of a refused call
	// is written.
	t.Run("Connected", s.invalidConnected)
	t.Run("Subscribed", s.invalidSubscribed)
	t.Run("Publish", s.invalidPublish)
	t.Run("Acked", s.invalidAcked)
	t.Run("Retain", s.invalidRetain)
	t.Run("FetchOffline", s.invalidFetch)
	t.Run("Lookups", s.invalidLookups)
}

func (s *suite) invalidConnected(t *testing.T) {
	t.Parallel()
	s.need(t, persist.OnConnected)
	st := s.store(t)
	lim := persist.LimitsOf(st)
	cl, canRead := s.hasClientLookup(st)
	client := func(id string) *persist.Client {
		return &persist.Client{ID: id, Username: "u", PeerHost: "192.0.2.1:1883", Node: "n1", Online: true, OnlineAt: time.Now()}
	}
	notStored := func(t *testing.T, ids ...string) {
		t.Helper()
		if !canRead {
			return
		}
		for _, id := range ids {
			if c, err := cl.Client(t.Context(), id); !errors.Is(err, persist.ErrNotFound) {
				t.Errorf("Client(%q) after the refused Connected = %+v, %v; want an error matching ErrNotFound", id, c, err)
			}
		}
	}
	t.Run("nil client", func(t *testing.T) {
		wantInvalid(t, "Connected(nil)", st.Connected(t.Context(), nil))
	})
	for i := range badIDs("", lim) {
		b := badIDs(s.uniq("inv-client"), lim)[i] // a prefix of its own
		t.Run("ID "+b.name, func(t *testing.T) {
			wantInvalid(t, "Connected with a client ID that is "+b.name, st.Connected(t.Context(), client(b.id)))
			notStored(t, b.mangled...)
		})
	}
	for _, field := range []string{"Username", "PeerHost", "Node"} {
		for _, v := range badTexts(lim) {
			t.Run(field+" "+v.name, func(t *testing.T) {
				c := client(s.uniq("inv-client"))
				switch field {
				case "Username":
					c.Username = v.value
				case "PeerHost":
					c.PeerHost = v.value
				case "Node":
					c.Node = v.value
				}
				wantInvalid(t, "Connected with a "+field+" that is "+v.name, st.Connected(t.Context(), c))
				notStored(t, c.ID)
			})
		}
	}
}

func (s *suite) invalidSubscribed(t *testing.T) {
	t.Parallel()
	s.need(t, persist.OnSubscribed)
	st := s.store(t)
	lim := persist.LimitsOf(st)
	sl, canRead := s.hasSubLookup(st)
	keep := []persist.Subscription{{Filter: "inv/keep", QoS: 1}}
	ok := persist.Subscription{Filter: "inv/new", QoS: 1}
	// Each case has a client of its own, subscribed to inv/keep; every
	// refused call would also add inv/new and remove inv/keep.
	client := func(t *testing.T) string {
		id := s.uniq("inv-sub")
		subscribe(t, st, id, keep, nil)
		return id
	}
	refused := func(t *testing.T, what, id, clientID string, subs []persist.Subscription, removed []string) {
		t.Helper()
		wantInvalid(t, what, st.Subscribed(t.Context(), clientID, subs, append([]string{"inv/keep"}, removed...)))
		if canRead {
			checkSubs(t, "after the refused Subscribed (nothing of it is stored)", sl, id, keep)
		}
	}
	for i := range badIDs("", lim) {
		t.Run("client ID "+badIDs("", lim)[i].name, func(t *testing.T) {
			id := client(t)
			b := badIDs(id, lim)[i]
			refused(t, "Subscribed with a client ID that is "+b.name, id, b.id, []persist.Subscription{ok}, nil)
			if canRead {
				for _, m := range b.mangled {
					if m != id {
						checkSubs(t, "a mangled client ID", sl, m, nil)
					}
				}
			}
		})
	}
	long := strings.Repeat("f", maxLen(lim.Topic)+1)
	for _, c := range []struct {
		name string
		sub  persist.Subscription
	}{
		{"QoS 3", persist.Subscription{Filter: "inv/q", QoS: 3}},                                // [MQTT-3.8.3-4]
		{"RetainHandling 3", persist.Subscription{Filter: "inv/rh", QoS: 1, RetainHandling: 3}}, // [MQTT-3.8.3-5]
		{"Identifier -1", persist.Subscription{Filter: "inv/id", QoS: 1, Identifier: -1}},
		{"Identifier 268435456", persist.Subscription{Filter: "inv/id", QoS: 1, Identifier: 268435456}}, // [MQTT-3.8.2.1.2]
		{"filter too long", persist.Subscription{Filter: long, QoS: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := client(t)
			refused(t, "Subscribed with a subscription of "+c.name, id, id, []persist.Subscription{ok, c.sub}, nil)
		})
	}
	for _, f := range append(invalidFilters, named{"too long", long}) {
		t.Run("removed "+f.name, func(t *testing.T) {
			id := client(t)
			refused(t, "Subscribed removing a filter that is "+f.name, id, id, []persist.Subscription{ok}, []string{f.value})
		})
	}
}

func (s *suite) invalidPublish(t *testing.T) {
	s.need(t, persist.OnPublish)
	s.eachMode(t, func(t *testing.T, mode persist.Mode) {
		st := s.store(t)
		lim := persist.LimitsOf(st)
		two := byte(2)
		type badMessage struct {
			name string
			mod  func(m *persist.Message) *persist.Message
		}
		set := func(f func(m *persist.Message)) func(m *persist.Message) *persist.Message {
			return func(m *persist.Message) *persist.Message { f(m); return m }
		}
		cases := []badMessage{
			{"nil message", func(*persist.Message) *persist.Message { return nil }},
			{"empty ID", set(func(m *persist.Message) { m.ID = "" })},
			{"ID too long", set(func(m *persist.Message) { m.ID = strings.Repeat("0", maxLen(lim.ID)+1) })},
			{"QoS 3", set(func(m *persist.Message) { m.QoS = 3 })}, // [MQTT-3.3.1-4]
			{"unknown Mode", set(func(m *persist.Message) { m.Mode = 2 })},
			{"topic too long", set(func(m *persist.Message) { m.Topic = strings.Repeat("t", maxLen(lim.Topic)+1) })},
			{"PayloadFormat 2", set(func(m *persist.Message) { m.Props.PayloadFormat = &two })},                                // [MQTT-3.3.2.3.2]
			{"ContentType invalid UTF-8", set(func(m *persist.Message) { m.Props.ContentType = "text/\xff" })},                 // [MQTT-1.5.4-1]
			{"ResponseTopic invalid UTF-8", set(func(m *persist.Message) { m.Props.ResponseTopic = "re/\xff" })},               // [MQTT-1.5.4-1]
			{"user property key invalid UTF-8", set(func(m *persist.Message) { m.Props.User = userProp("k\xff", "v") })},       // [MQTT-1.5.4-1]
			{"user property value invalid UTF-8", set(func(m *persist.Message) { m.Props.User = userProp("k", "v\xc0\xaf") })}, // [MQTT-1.5.4-1]
		}
		for _, field := range []string{"From", "Username", "PeerHost", "Node"} {
			for _, v := range badTexts(lim) {
				cases = append(cases, badMessage{field + " " + v.name, set(func(m *persist.Message) {
					switch field {
					case "From":
						m.From = v.value
					case "Username":
						m.Username = v.value
					case "PeerHost":
						m.PeerHost = v.value
					case "Node":
						m.Node = v.value
					}
				})})
			}
		}
		if lim.Payload > 0 {
			cases = append(cases, badMessage{"payload too large", set(func(m *persist.Message) { m.Payload = make([]byte, lim.Payload+1) })})
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := s.read(t, st, "c", "#", mode)
				tp := s.uniq("inv/t")
				ok1 := NewMessage(tp, []byte("before "+c.name))
				ok2 := NewMessage(tp, []byte("after "+c.name))
				withMode(mode, ok1, ok2)
				bad := NewMessage(tp+"/bad", []byte(c.name))
				bad.Mode = mode
				bad = c.mod(bad)
				wantInvalid(t, "Publish of a batch with a message of "+c.name, st.Publish(t.Context(), ok1, bad, ok2))
				// The whole batch is rejected before anything is written.
				sameIDs(t, "messages after the refused batch", s.read(t, st, "c", "#", mode), before)
			})
		}
	})
}

func userProp(k, v string) []persist.UserProperty {
	return []persist.UserProperty{{Key: "ok", Value: "ok"}, {Key: k, Value: v}}
}

func (s *suite) invalidAcked(t *testing.T) {
	t.Parallel()
	s.need(t, persist.OnAcked)
	st := s.store(t)
	lim := persist.LimitsOf(st)
	// A fanout message whose cursor a refused call would move.
	m0 := NewMessage("inv/acked", []byte("m0"))
	canRead := !s.h.Features.NoFanout && s.has(persist.OnPublish|persist.OnFetch)
	if canRead {
		publish(t, st, m0)
	}
	okAck := persist.Ack{ID: m0.ID, Topic: m0.Topic}
	// Each case acks as a client of its own (id), whose cursor is read
	// back.
	refused := func(t *testing.T, what, id, clientID string, acks ...persist.Ack) {
		t.Helper()
		wantInvalid(t, what, st.Acked(t.Context(), clientID, acks...))
		if canRead {
			sameIDs(t, "after the refused Acked (no cursor moved)", fetch(t, st, id, "inv/acked", fan), msgs(m0))
		}
	}
	for i := range badIDs("", lim) {
		t.Run("client ID "+badIDs("", lim)[i].name, func(t *testing.T) {
			id := s.uniq("inv-acker")
			b := badIDs(id, lim)[i]
			refused(t, "Acked with a client ID that is "+b.name, id, b.id, okAck)
		})
	}
	t.Run("ack ID empty", func(t *testing.T) {
		id := s.uniq("inv-acker")
		refused(t, "Acked with an empty message ID", id, id, okAck, persist.Ack{ID: "", Topic: m0.Topic})
	})
	t.Run("ack ID too long", func(t *testing.T) {
		id := s.uniq("inv-acker")
		refused(t, "Acked with a message ID that is too long", id, id, okAck, persist.Ack{ID: strings.Repeat("0", maxLen(lim.ID)+1), Topic: m0.Topic})
	})
	for _, c := range append(invalidNames, named{"too long", strings.Repeat("t", maxLen(lim.Topic)+1)}) {
		t.Run("ack topic "+c.name, func(t *testing.T) {
			id := s.uniq("inv-acker")
			refused(t, "Acked with a topic that is "+c.name, id, id, okAck, persist.Ack{ID: persist.NewID(), Topic: c.value})
		})
	}
}

func (s *suite) invalidRetain(t *testing.T) {
	t.Parallel()
	s.need(t, persist.OnRetain)
	st := s.store(t)
	lim := persist.LimitsOf(st)
	rl, canRead := s.hasRetainLookup(st)
	two := byte(2)
	cases := []struct {
		name string
		mod  func(m *persist.Message)
	}{
		{"QoS 3", func(m *persist.Message) { m.QoS = 3 }},
		{"unknown Mode", func(m *persist.Message) { m.Mode = 2 }},
		{"topic too long", func(m *persist.Message) { m.Topic = strings.Repeat("t", maxLen(lim.Topic)+1) }},
		{"From NUL", func(m *persist.Message) { m.From = "a\x00b" }},
		{"Username invalid UTF-8", func(m *persist.Message) { m.Username = "a\xffb" }},
		{"PayloadFormat 2", func(m *persist.Message) { m.Props.PayloadFormat = &two }},
		{"ContentType invalid UTF-8", func(m *persist.Message) { m.Props.ContentType = "text/\xff" }},
	}
	if lim.Payload > 0 {
		cases = append(cases, struct {
			name string
			mod  func(m *persist.Message)
		}{"payload too large", func(m *persist.Message) { m.Payload = make([]byte, lim.Payload+1) }})
	}
	all := func(t *testing.T) []*persist.Message {
		t.Helper()
		if !canRead {
			return nil
		}
		return retained(t, rl, "#")
	}
	t.Run("nil message", func(t *testing.T) {
		before := all(t)
		wantInvalid(t, "Retain(nil)", st.Retain(t.Context(), nil))
		sameIDs(t, "retained after the refused Retain", all(t), before)
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := all(t)
			m := newRetained(s.uniq("inv/r"), []byte(c.name))
			c.mod(m)
			wantInvalid(t, "Retain of a message of "+c.name, st.Retain(t.Context(), m))
			sameIDs(t, "retained after the refused Retain", all(t), before)
		})
	}
}

func (s *suite) invalidFetch(t *testing.T) {
	t.Parallel()
	s.need(t, persist.OnFetch)
	st := s.store(t)
	lim := persist.LimitsOf(st)
	mode := s.anyMode(t)
	// Of a queue, a queue message per case that a refused fetch would
	// claim, so that another client would not get it.
	claims := !s.h.Features.NoQueue && s.has(persist.OnPublish)
	if claims {
		mode = persist.Queue
	}
	id := s.uniq("inv-fetcher")
	refused := func(t *testing.T, what, clientID, filter string, opt persist.Fetch) {
		t.Helper()
		var q *persist.Message
		if claims {
			q = NewMessage("inv/"+s.uniq("q"), []byte(what))
			q.Mode = persist.Queue
			publish(t, st, q)
		}
		got, err := st.FetchOffline(t.Context(), clientID, filter, opt)
		if wantInvalid(t, what, err) && len(got) > 0 {
			t.Errorf("%s: returned %d messages with its error", what, len(got))
		}
		if claims {
			sameIDs(t, "another client after the refused fetch (it claimed nothing)", fetch(t, st, s.uniq("inv-other"), q.Topic, que), msgs(q))
		}
	}
	for _, b := range badIDs(id, lim) {
		t.Run("client ID "+b.name, func(t *testing.T) {
			refused(t, "FetchOffline with a client ID that is "+b.name, b.id, "inv/#", persist.Fetch{Mode: mode})
		})
	}
	t.Run("filter too long", func(t *testing.T) {
		refused(t, "FetchOffline with a filter that is too long", id, strings.Repeat("f", maxLen(lim.Topic)+1), persist.Fetch{Mode: mode})
	})
	for _, c := range []struct {
		name string
		opt  persist.Fetch
	}{
		{"Mode 7", persist.Fetch{Mode: 7}},
		{"Limit -1", persist.Fetch{Mode: mode, Limit: -1}},
		{"Since -1s", persist.Fetch{Mode: mode, Since: -time.Second}},
		{"Lease -1s", persist.Fetch{Mode: mode, Lease: -time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			refused(t, "FetchOffline with "+c.name, id, "inv/#", c.opt)
		})
	}
}

func (s *suite) invalidLookups(t *testing.T) {
	t.Parallel()
	st := s.store(t)
	lim := persist.LimitsOf(st)
	id := s.uniq("inv-lookup")
	t.Run("Client", func(t *testing.T) {
		cl, ok := st.(persist.ClientLookup)
		if !ok {
			t.Skipf("store %T does not implement persist.ClientLookup", st)
		}
		for _, b := range badIDs(id, lim) {
			t.Run(b.name, func(t *testing.T) {
				c, err := cl.Client(t.Context(), b.id)
				if wantInvalid(t, "Client with an ID that is "+b.name, err) && c != nil {
					t.Errorf("Client(%q) returned %+v with its error", b.id, c)
				}
			})
		}
	})
	t.Run("Subscriptions", func(t *testing.T) {
		sl, ok := st.(persist.SubscriptionLookup)
		if !ok {
			t.Skipf("store %T does not implement persist.SubscriptionLookup", st)
		}
		for _, b := range badIDs(id, lim) {
			t.Run(b.name, func(t *testing.T) {
				subs, err := sl.Subscriptions(t.Context(), b.id)
				if wantInvalid(t, "Subscriptions with a client ID that is "+b.name, err) && len(subs) > 0 {
					t.Errorf("Subscriptions(%q) returned %+v with its error", b.id, subs)
				}
			})
		}
	})
	t.Run("Retained", func(t *testing.T) {
		rl, ok := st.(persist.RetainLookup)
		if !ok {
			t.Skipf("store %T does not implement persist.RetainLookup", st)
		}
		for _, f := range append(invalidFilters, named{"too long", strings.Repeat("f", maxLen(lim.Topic)+1)}) {
			t.Run(f.name, func(t *testing.T) {
				got, err := rl.Retained(t.Context(), f.value)
				if wantInvalid(t, "Retained with a filter that is "+f.name, err) && len(got) > 0 {
					t.Errorf("Retained(%q) returned messages with its error", f.value)
				}
			})
		}
	})
}

// testUnsupported checks that a store asked for what it lacks says so with
// ErrUnsupported instead of pretending: a mode it declares it lacks, and
// every verb whose event it does not handle.
func (s *suite) testUnsupported(t *testing.T) {
	st := s.store(t)
	if s.has(persist.OnFetch) {
		for _, m := range s.modes() {
			if m.lack == "" {
				continue
			}
			_, err := st.FetchOffline(t.Context(), "c", "a/b", persist.Fetch{Mode: m.mode})
			wantErr(t, "FetchOffline("+modeName(m.mode)+") of a store declaring "+m.lack, err, persist.ErrUnsupported)
		}
	}
	ctx := t.Context()
	m := NewMessage("uns/t", []byte("x"))
	m.Mode = s.anyMode(t)
	for _, v := range []struct {
		event persist.Event
		name  string
		call  func() error
	}{
		{persist.OnConnected, "Connected", func() error {
			return st.Connected(ctx, &persist.Client{ID: "c", Node: "n", Online: true, OnlineAt: time.Now()})
		}},
		{persist.OnSubscribed, "Subscribed", func() error {
			return st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "uns/t", QoS: 1}}, nil)
		}},
		{persist.OnPublish, "Publish", func() error { return st.Publish(ctx, m) }},
		{persist.OnAcked, "Acked", func() error { return st.Acked(ctx, "c", persist.Ack{ID: m.ID, Topic: m.Topic}) }},
		{persist.OnRetain, "Retain", func() error { return st.Retain(ctx, newRetained("uns/r", []byte("x"))) }},
		{persist.OnFetch, "FetchOffline", func() error {
			_, err := st.FetchOffline(ctx, "c", "uns/t", persist.Fetch{Mode: m.Mode})
			return err
		}},
	} {
		if !s.has(v.event) {
			wantErr(t, v.name+" of a store whose Events leave out "+v.event.String(), v.call(), persist.ErrUnsupported)
		}
	}
}
