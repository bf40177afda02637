package persist_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// recStore records which verb got which arguments. It is not a database:
// it tests the Router's routing decisions. FetchOffline returns the
// messages it was given to hold (at most opt.Limit of them); the lookups
// return what they were given to hold.
type recStore struct {
	name string
	err  error         // returned by every verb when set
	gate chan struct{} // when set, Publish waits until it is closed

	mu        sync.Mutex
	calls     []string
	published [][]*persist.Message
	clients   []persist.Client
	subs      [][]persist.Subscription
	removed   [][]string
	acks      [][]persist.Ack
	retained  []*persist.Message
	fetches   []fetchCall

	hold        []*persist.Message
	holdSubs    []persist.Subscription
	holdRetain  []*persist.Message
	holdClient  *persist.Client
	pingErr     error
	closeCalled bool
}

type fetchCall struct {
	clientID, filter string
	opt              persist.Fetch
}

func newRec(name string) *recStore { return &recStore{name: name} }

func (s *recStore) record(verb string) {
	s.mu.Lock()
	s.calls = append(s.calls, verb)
	s.mu.Unlock()
}

func (s *recStore) Connected(_ context.Context, c *persist.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "Connected")
	s.clients = append(s.clients, *c)
	return s.err
}

func (s *recStore) Subscribed(_ context.Context, _ string, subs []persist.Subscription, removed []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "Subscribed")
	s.subs = append(s.subs, subs)
	s.removed = append(s.removed, removed)
	return s.err
}

func (s *recStore) Publish(ctx context.Context, msgs ...*persist.Message) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "Publish")
	s.published = append(s.published, msgs)
	return s.err
}

func (s *recStore) Acked(_ context.Context, _ string, acks ...persist.Ack) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "Acked")
	s.acks = append(s.acks, acks)
	return s.err
}

func (s *recStore) Retain(_ context.Context, m *persist.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "Retain")
	s.retained = append(s.retained, m)
	return s.err
}

func (s *recStore) FetchOffline(_ context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "FetchOffline")
	s.fetches = append(s.fetches, fetchCall{clientID, filter, opt})
	if s.err != nil {
		return nil, s.err
	}
	out := s.hold
	if opt.Limit > 0 && len(out) > opt.Limit {
		out = out[:opt.Limit]
	}
	return out, nil
}

func (s *recStore) Subscriptions(context.Context, string) ([]persist.Subscription, error) {
	s.record("Subscriptions")
	return s.holdSubs, s.err
}

func (s *recStore) Retained(context.Context, string) ([]*persist.Message, error) {
	s.record("Retained")
	return s.holdRetain, s.err
}

func (s *recStore) Client(context.Context, string) (*persist.Client, error) {
	s.record("Client")
	return s.holdClient, s.err
}

func (s *recStore) Ping(context.Context) error {
	s.record("Ping")
	return s.pingErr
}

func (s *recStore) Close() error {
	s.mu.Lock()
	s.closeCalled = true
	s.mu.Unlock()
	return nil
}

func (s *recStore) count(verb string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c == verb {
			n++
		}
	}
	return n
}

// topics returns the topics of every published message, in order.
func (s *recStore) topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.published {
		for _, m := range b {
			out = append(out, m.Topic)
		}
	}
	return out
}

// pubOnly is a publish-only writer, like a time-series writer.
type pubOnly struct {
	persist.Unsupported
	rec *recStore
}

func (p *pubOnly) Events() persist.Event { return persist.OnPublish }
func (p *pubOnly) Publish(ctx context.Context, msgs ...*persist.Message) error {
	return p.rec.Publish(ctx, msgs...)
}

// forgetful embeds Unsupported but does not declare its events.
type forgetful struct{ persist.Unsupported }

func mustRouter(t *testing.T, rules ...persist.Rule) *persist.Router {
	t.Helper()
	r, err := persist.NewRouter(rules...)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	return r
}

func statsOf(r *persist.Router, name string) persist.RuleStats {
	for _, s := range r.Stats() {
		if s.Name == name {
			return s
		}
	}
	return persist.RuleStats{}
}

func TestRouterPublishRoutesByTopicAndQoS(t *testing.T) {
	ctx := context.Background()
	sensors, queue, archive := newRec("sensors"), newRec("queue"), newRec("archive")
	r := mustRouter(t,
		persist.Rule{Name: "sensors", Filter: "sensor/+/temp", Store: sensors},
		persist.Rule{Name: "queue", Filter: "queue/#", Store: queue, Mode: persist.Queue},
		persist.Rule{Name: "archive", Events: persist.OnPublish, Filter: "#", Store: archive, QoS0: true},
	)
	msgs := []*persist.Message{
		{Topic: "sensor/1/temp", QoS: 1},
		{Topic: "queue/jobs", QoS: 2},
		{Topic: "sensor/2/temp", QoS: 0}, // QoS 0: archive only
		{Topic: "sensor/1/humidity", QoS: 1},
		{Topic: "queue", QoS: 1},            // "queue/#" matches its parent [MQTT-4.7.1-2]
		{Topic: "$SYS/broker/load", QoS: 1}, // '#' does not match $-topics [MQTT-4.7.2-1]
	}
	if err := r.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	check := func(s *recStore, want ...string) {
		t.Helper()
		if got := s.topics(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s stored %q, want %q", s.name, got, want)
		}
		if n := s.count("Publish"); len(want) > 0 && n != 1 {
			t.Errorf("%s got %d Publish calls, want 1", s.name, n)
		}
	}
	check(sensors, "sensor/1/temp")
	check(queue, "queue/jobs", "queue")
	check(archive, "sensor/1/temp", "queue/jobs", "sensor/2/temp", "sensor/1/humidity", "queue")
	for _, m := range queue.published[0] {
		if m.Mode != persist.Queue {
			t.Errorf("queue rule stored %s in mode %v", m.Topic, m.Mode)
		}
	}
	for _, m := range archive.published[0] {
		if m.Mode != persist.Fanout {
			t.Errorf("archive rule stored %s in mode %v", m.Topic, m.Mode)
		}
	}
	// The caller's messages keep their mode; the store got copies.
	if msgs[1].Mode != persist.Fanout {
		t.Errorf("caller's message mode changed to %v", msgs[1].Mode)
	}
	if queue.published[0][0] == msgs[1] {
		t.Error("store got the caller's message, not a copy")
	}
	want := map[string]persist.RuleStats{
		"sensors": {Index: 0, Name: "sensors", Matched: 1, Written: 1},
		"queue":   {Index: 1, Name: "queue", Matched: 2, Written: 2},
		"archive": {Index: 2, Name: "archive", Matched: 5, Written: 5},
	}
	for name, w := range want {
		if got := statsOf(r, name); got != w {
			t.Errorf("Stats %s = %+v, want %+v", name, got, w)
		}
	}
}

func TestRouterPublishFillsIDAndTime(t *testing.T) {
	s := newRec("s")
	r := mustRouter(t, persist.Rule{Store: s, Expiry: time.Hour})
	before := time.Now()
	m := &persist.Message{Topic: "a", QoS: 1}
	own := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	set := &persist.Message{ID: "given", Topic: "b", QoS: 1, Time: before.Add(-time.Minute), Expiry: own}
	if err := r.Publish(context.Background(), m, set); err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || m.Time.Before(before) || m.Time.After(time.Now()) {
		t.Fatalf("Publish left ID %q Time %v on the caller's message", m.ID, m.Time)
	}
	if at, ok := persist.IDTime(m.ID); !ok || at.Sub(m.Time).Abs() > time.Millisecond {
		t.Errorf("ID %q is not an ID of the message's time %v", m.ID, m.Time)
	}
	if !m.Expiry.IsZero() {
		t.Errorf("caller's Expiry changed to %v", m.Expiry)
	}
	got := s.published[0]
	if got[0].ID != m.ID || !got[0].Time.Equal(m.Time) {
		t.Errorf("stored ID %q Time %v, caller has %q %v", got[0].ID, got[0].Time, m.ID, m.Time)
	}
	if want := m.Time.Add(time.Hour); !got[0].Expiry.Equal(want) {
		t.Errorf("default expiry %v, want Time+1h = %v", got[0].Expiry, want)
	}
	if got[1].ID != "given" || !got[1].Expiry.Equal(own) || !set.Time.Equal(before.Add(-time.Minute)) {
		t.Errorf("message with ID, Time and Expiry changed: stored %q expiry %v", got[1].ID, got[1].Expiry)
	}
}

func TestRouterPublishOncePerStore(t *testing.T) {
	s, other := newRec("s"), newRec("other")
	r := mustRouter(t,
		persist.Rule{Name: "narrow", Filter: "a/b", Store: s, Expiry: 2 * time.Hour},
		persist.Rule{Name: "never", Filter: "a/+/c", Store: s},
		persist.Rule{Name: "wide", Filter: "a/#", Store: s, Expiry: time.Hour},
		persist.Rule{Name: "other", Filter: "a/b", Store: other},
	)
	at := time.Now()
	msgs := []*persist.Message{
		{Topic: "a/b", QoS: 1, Time: at},   // narrow (first) + wide: narrow's 2h
		{Topic: "a/x", QoS: 1, Time: at},   // wide only
		{Topic: "a/x/c", QoS: 1, Time: at}, // never (first) + wide: no expiry
		{Topic: "a/b", QoS: 1, Time: at},   // another message, same topic
	}
	if err := r.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	if n := s.count("Publish"); n != 1 {
		t.Fatalf("store got %d Publish calls, want 1", n)
	}
	got := s.published[0]
	if len(got) != 4 {
		t.Fatalf("store got %d messages, want 4 (each once)", len(got))
	}
	for i, m := range got {
		if m.ID != msgs[i].ID {
			t.Errorf("message %d: stored ID %s, want %s (order kept)", i, m.ID, msgs[i].ID)
		}
	}
	if want := at.Add(2 * time.Hour); !got[0].Expiry.Equal(want) {
		t.Errorf("a/b via two rules: expiry %v, want the first rule's %v", got[0].Expiry, want)
	}
	if want := at.Add(time.Hour); !got[1].Expiry.Equal(want) {
		t.Errorf("a/x: expiry %v, want %v", got[1].Expiry, want)
	}
	if !got[2].Expiry.IsZero() {
		t.Errorf("a/x/c, first via a rule without expiry: expiry %v, want none", got[2].Expiry)
	}
	if got := other.topics(); !reflect.DeepEqual(got, []string{"a/b", "a/b"}) {
		t.Errorf("other store got %q", got)
	}
	for name, matched := range map[string]uint64{"wide": 4, "narrow": 2, "never": 1, "other": 2} {
		if st := statsOf(r, name); st.Matched != matched || st.Written != matched || st.Failed != 0 {
			t.Errorf("Stats %s = %+v, want %d matched and written", name, st, matched)
		}
	}
}

func TestRouterPublishStoresConcurrently(t *testing.T) {
	slow, fast := newRec("slow"), newRec("fast")
	slow.gate = make(chan struct{})
	r := mustRouter(t,
		persist.Rule{Name: "slow", Store: slow},
		persist.Rule{Name: "fast", Store: fast},
	)
	done := make(chan error)
	go func() { done <- r.Publish(context.Background(), &persist.Message{Topic: "t", QoS: 1}) }()
	// The fast store is written while the slow one is still blocked.
	for fast.count("Publish") == 0 {
		select {
		case err := <-done:
			t.Fatalf("Publish returned %v before the slow store was released", err)
		default:
			time.Sleep(time.Millisecond)
		}
	}
	if slow.count("Publish") != 0 {
		t.Fatal("slow store finished while gated")
	}
	close(slow.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if slow.count("Publish") != 1 {
		t.Errorf("slow store got %d Publish calls, want 1", slow.count("Publish"))
	}
}

func TestRouterPublishErrors(t *testing.T) {
	boom := errors.New("boom")
	bad, good := newRec("bad"), newRec("good")
	bad.err = persist.Wrap("rec", "Publish", persist.ErrUnavailable, boom, false)
	r := mustRouter(t,
		persist.Rule{Name: "bad1", Filter: "a/#", Store: bad},
		persist.Rule{Filter: "a/b", Store: bad},
		persist.Rule{Name: "good", Store: good},
	)
	err := r.Publish(context.Background(), &persist.Message{Topic: "a/b", QoS: 1}, &persist.Message{Topic: "a/c", QoS: 1})
	if !errors.Is(err, boom) || !errors.Is(err, persist.ErrUnavailable) || !persist.IsRetryable(err) {
		t.Fatalf("error %v does not unwrap to the store's retryable error", err)
	}
	var re *persist.RuleError
	if !errors.As(err, &re) || !reflect.DeepEqual(re.Rules, []string{"bad1", "#1"}) || re.Op != "Publish" {
		t.Fatalf("error %v: RuleError %+v, want rules bad1 and #1", err, re)
	}
	if !strings.Contains(err.Error(), `rules "bad1", "#1": Publish: `) {
		t.Errorf("error text %q does not name the rules", err)
	}
	if len(good.topics()) != 2 {
		t.Errorf("good store got %q despite the other store's failure", good.topics())
	}
	if st := statsOf(r, "bad1"); st.Matched != 2 || st.Failed != 2 || st.Written != 0 {
		t.Errorf("Stats bad1 = %+v", st)
	}
	if st := statsOf(r, "#1"); st.Matched != 1 || st.Failed != 1 {
		t.Errorf("Stats #1 = %+v", st)
	}
	if st := statsOf(r, "good"); st.Written != 2 || st.Failed != 0 {
		t.Errorf("Stats good = %+v", st)
	}

	// Bad input stores nothing.
	for _, msgs := range [][]*persist.Message{
		{{Topic: "ok", QoS: 1}, nil},
		{{Topic: "ok", QoS: 1}, {Topic: "a/+/b", QoS: 1}},
		{{Topic: "", QoS: 1}},
	} {
		err := r.Publish(context.Background(), msgs...)
		if !errors.Is(err, persist.ErrInvalid) || !strings.Contains(err.Error(), "message") {
			t.Errorf("Publish(%v) error = %v, want ErrInvalid naming the message", msgs, err)
		}
	}
	if len(good.topics()) != 2 {
		t.Errorf("invalid publishes stored something: %q", good.topics())
	}
}

func TestNewRouterRejects(t *testing.T) {
	s := newRec("s")
	tests := []struct {
		name  string
		rules []persist.Rule
		want  []string
	}{
		{"no rules", nil, []string{"no rules"}},
		{"nil store", []persist.Rule{{Store: s}, {Name: "orphan"}}, []string{`rule 1 "orphan"`, "no store"}},
		{"bad filter", []persist.Rule{{Store: s}, {Name: "bad", Filter: "a/#/b", Store: s}}, []string{`rule 1 "bad"`, `level 1 "#"`, "MQTT-4.7.1-2"}},
		{"bad filter unnamed", []persist.Rule{{Filter: "sensor/te+mp", Store: s}}, []string{"rule 0:", `level 1 "te+mp"`}},
		{"shared filter", []persist.Rule{{Name: "sh", Filter: "$share/g/a", Store: s}}, []string{`rule 0 "sh"`, "shared"}},
		{"unknown mode", []persist.Rule{{Name: "m", Store: s, Mode: persist.Mode(7)}}, []string{`rule 0 "m"`, "unknown mode mode(7)"}},
		{"negative expiry", []persist.Rule{{Name: "e", Store: s, Expiry: -time.Second}}, []string{`rule 0 "e"`, "negative Expiry"}},
		{"negative limit", []persist.Rule{{Name: "l", Store: s, Offline: persist.Fetch{Limit: -1}}}, []string{"negative Offline.Limit"}},
		{"unknown events", []persist.Rule{{Name: "x", Store: s, Events: 1 << 14}}, []string{`rule 0 "x"`, "unknown events event(0x4000)"}},
		{"unsupported event", []persist.Rule{{Name: "tsdb", Store: &pubOnly{rec: s}, Events: persist.OnPublish | persist.OnConnected}},
			[]string{`rule 0 "tsdb"`, "does not handle client.connected", "it handles message.publish"}},
		{"delivered not handled", []persist.Rule{{Name: "d", Store: s, Events: persist.OnDelivered}}, []string{"does not handle message.delivered"}},
		{"no events declared", []persist.Rule{{Name: "f", Store: forgetful{}}}, []string{`rule 0 "f"`, "handles no events"}},
	}
	for _, tt := range tests {
		r, err := persist.NewRouter(tt.rules...)
		if err == nil {
			t.Errorf("%s: NewRouter succeeded", tt.name)
			r.Close()
			continue
		}
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("%s: error %v does not match ErrInvalid", tt.name, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tt.name, err, w)
			}
		}
	}
	var te *topic.Error
	if _, err := persist.NewRouter(persist.Rule{Filter: "a/#/b", Store: s}); !errors.As(err, &te) || te.Level != 1 {
		t.Errorf("bad filter error %v does not unwrap to a *topic.Error at level 1", err)
	}
	// Different modes are fine on one store when the filters cannot overlap,
	// or when only one of the rules publishes.
	if _, err := persist.NewRouter(
		persist.Rule{Filter: "queue/#", Store: s, Mode: persist.Queue},
		persist.Rule{Filter: "pubsub/#", Store: s},
		persist.Rule{Events: persist.OnFetch, Filter: "#", Store: s},
	); err != nil {
		t.Errorf("disjoint modes on one store: %v", err)
	}
}

func TestRouterPublishOnlyStore(t *testing.T) {
	ctx := context.Background()
	rec, full := newRec("tsdb"), newRec("full")
	r := mustRouter(t,
		persist.Rule{Name: "tsdb", Store: &pubOnly{rec: rec}},
		persist.Rule{Name: "full", Store: full},
	)
	if got, want := r.Events(), persist.AllEvents; got != want {
		t.Errorf("Events() = %v, want %v", got, want)
	}
	c := &persist.Client{ID: "c", Online: true}
	if err := r.Connected(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.Retain(ctx, &persist.Message{Topic: "t", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Acked(ctx, "c", persist.Ack{ID: "1", Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Publish(ctx, &persist.Message{Topic: "t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if got := rec.calls; !reflect.DeepEqual(got, []string{"Publish"}) {
		t.Errorf("publish-only store got %q, want only Publish", got)
	}
	if got := full.calls; !reflect.DeepEqual(got, []string{"Connected", "Retain", "Acked", "Publish"}) {
		t.Errorf("full store got %q", got)
	}
	// The embedded verbs say what they are.
	var u persist.Unsupported
	errs := []error{
		u.Connected(ctx, c), u.Subscribed(ctx, "c", nil, nil), u.Publish(ctx), u.Acked(ctx, "c"), u.Retain(ctx, &persist.Message{}),
	}
	_, ferr := u.FetchOffline(ctx, "c", "#", persist.Fetch{})
	errs = append(errs, ferr)
	for i, err := range errs {
		if !errors.Is(err, persist.ErrUnsupported) || persist.IsRetryable(err) {
			t.Errorf("Unsupported verb %d: %v, want ErrUnsupported", i, err)
		}
	}
	if !strings.Contains(errs[0].Error(), "Connected") {
		t.Errorf("%q does not name the verb", errs[0])
	}
}

func TestRouterComposes(t *testing.T) {
	ctx := context.Background()
	leaf := newRec("leaf")
	inner := mustRouter(t, persist.Rule{Events: persist.OnPublish | persist.OnRetain, Filter: "a/#", Store: leaf})
	outer := mustRouter(t, persist.Rule{Name: "nested", Filter: "+/b", Store: inner})
	if got := outer.Events(); got != persist.OnPublish|persist.OnRetain {
		t.Errorf("outer Events() = %v, want the inner router's", got)
	}
	if err := outer.Publish(ctx, &persist.Message{Topic: "a/b", QoS: 1}, &persist.Message{Topic: "c/b", QoS: 1}, &persist.Message{Topic: "a/c", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if got := leaf.topics(); !reflect.DeepEqual(got, []string{"a/b"}) {
		t.Errorf("leaf got %q, want only a/b (both routers' filters)", got)
	}
	if _, err := persist.NewRouter(persist.Rule{Events: persist.OnConnected, Store: inner}); err == nil {
		t.Error("a rule asking a router for an event none of its rules handles was accepted")
	}
}

func TestRouterRetainAckConnected(t *testing.T) {
	ctx := context.Background()
	s1, s2 := newRec("s1"), newRec("s2")
	r := mustRouter(t,
		persist.Rule{Name: "q", Filter: "queue/#", Store: s1, Mode: persist.Queue, Expiry: time.Hour},
		persist.Rule{Name: "p", Filter: "pubsub/#", Store: s1},
		persist.Rule{Name: "all", Filter: "#", Store: s2, Events: persist.OnRetain | persist.OnConnected},
	)
	m := &persist.Message{Topic: "queue/x", QoS: 0, Retain: true, Payload: []byte("v")}
	if err := r.Retain(ctx, m); err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || m.Time.IsZero() {
		t.Errorf("Retain left ID %q Time %v", m.ID, m.Time)
	}
	for _, s := range []*recStore{s1, s2} {
		if len(s.retained) != 1 || s.retained[0].Topic != "queue/x" || s.retained[0].ID != m.ID || !s.retained[0].Expiry.IsZero() || s.retained[0] == m {
			t.Errorf("%s retained %+v, want one copy of queue/x without a default expiry", s.name, s.retained)
		}
	}

	acks := []persist.Ack{{ID: "1", Topic: "queue/a"}, {ID: "2", Topic: "pubsub/b"}, {ID: "3", Topic: "elsewhere"}, {ID: "4", Topic: "queue/c"}}
	if err := r.Acked(ctx, "c1", acks...); err != nil {
		t.Fatal(err)
	}
	if want := [][]persist.Ack{{acks[0], acks[1], acks[3]}}; !reflect.DeepEqual(s1.acks, want) {
		t.Errorf("s1 acks %v, want %v in one call", s1.acks, want)
	}
	if len(s2.acks) != 0 {
		t.Errorf("s2 (no OnAcked) got acks %v", s2.acks)
	}
	for _, bad := range []persist.Ack{{ID: "", Topic: "a"}, {ID: "1", Topic: "a/#"}, {ID: "1"}} {
		if err := r.Acked(ctx, "c1", bad); !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("Acked(%+v) = %v, want ErrInvalid", bad, err)
		}
	}

	c := &persist.Client{ID: "c1", Online: true, Node: "n1"}
	if err := r.Connected(ctx, c); err != nil {
		t.Fatal(err)
	}
	if s1.count("Connected") != 1 || s2.count("Connected") != 1 || s1.clients[0] != *c {
		t.Errorf("Connected calls s1 %d s2 %d, want one each with the client", s1.count("Connected"), s2.count("Connected"))
	}
	if err := r.Connected(ctx, nil); !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("Connected(nil) = %v", err)
	}
}

func TestRouterSubscribed(t *testing.T) {
	ctx := context.Background()
	qs, ps := newRec("queue"), newRec("pubsub")
	r := mustRouter(t,
		persist.Rule{Name: "q", Filter: "queue/#", Store: qs, Mode: persist.Queue, History: true},
		persist.Rule{Name: "q2", Filter: "queue/x", Store: qs, Mode: persist.Queue},
		persist.Rule{Name: "p", Filter: "pubsub/#", Store: ps},
	)
	subs := []persist.Subscription{
		{Filter: "queue/a", QoS: 1},
		{Filter: "pubsub/+/x", QoS: 2},
		{Filter: "+/x", QoS: 1},
		{Filter: "other/x", QoS: 1},
		{Filter: "$share/g/queue/b", QoS: 1},
		{Filter: "queue/x", QoS: 1},
	}
	if err := r.Subscribed(ctx, "c1", subs, []string{"pubsub/old", "nowhere"}); err != nil {
		t.Fatal(err)
	}
	filters := func(s []persist.Subscription) (out []string) {
		for _, x := range s {
			out = append(out, x.Filter)
		}
		return out
	}
	if qs.count("Subscribed") != 1 || ps.count("Subscribed") != 1 {
		t.Fatalf("Subscribed calls: queue %d, pubsub %d; want 1 each", qs.count("Subscribed"), ps.count("Subscribed"))
	}
	if got, want := filters(qs.subs[0]), []string{"queue/a", "+/x", "$share/g/queue/b", "queue/x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("queue store got %q, want %q", got, want)
	}
	for _, s := range qs.subs[0] {
		if !s.History {
			t.Errorf("queue store got %s without History", s.Filter)
		}
	}
	if got, want := filters(ps.subs[0]), []string{"pubsub/+/x", "+/x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pubsub store got %q, want %q", got, want)
	}
	for _, s := range ps.subs[0] {
		if s.History {
			t.Errorf("pubsub store got %s with History", s.Filter)
		}
	}
	if got := ps.removed[0]; !reflect.DeepEqual(got, []string{"pubsub/old"}) {
		t.Errorf("pubsub store removed %q", got)
	}
	if len(qs.removed[0]) != 0 {
		t.Errorf("queue store removed %q", qs.removed[0])
	}
	for _, s := range subs {
		if s.History {
			t.Errorf("caller's subscription %s changed", s.Filter)
		}
	}
	err := r.Subscribed(ctx, "c1", []persist.Subscription{{Filter: "ok"}, {Filter: "a/#/b"}}, nil)
	if !errors.Is(err, persist.ErrInvalid) || !strings.Contains(err.Error(), "subscription 1") || !strings.Contains(err.Error(), "level 1") {
		t.Errorf("invalid subscription error = %v", err)
	}
	if err := r.Subscribed(ctx, "c1", nil, []string{"+x"}); !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("invalid removed filter error = %v", err)
	}
}

func msg(id, topic string) *persist.Message { return &persist.Message{ID: id, Topic: topic, QoS: 1} }

func ids(msgs []*persist.Message) (out []string) {
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

func TestRouterFetchOffline(t *testing.T) {
	ctx := context.Background()
	qs, ps, other := newRec("queue"), newRec("pubsub"), newRec("other")
	qs.hold = []*persist.Message{msg("05", "queue/a"), msg("02", "queue/b/c"), msg("09", "elsewhere")}
	ps.hold = []*persist.Message{msg("01", "pubsub/a"), msg("02", "queue/b/c"), msg("07", "pubsub/b"), msg("08", "queue/a")}
	r := mustRouter(t,
		persist.Rule{Name: "q", Filter: "queue/#", Store: qs, Mode: persist.Queue, Offline: persist.Fetch{Limit: 5, Since: 2 * time.Hour, Mode: persist.Fanout}},
		persist.Rule{Name: "p", Filter: "pubsub/#", Store: ps, Offline: persist.Fetch{Lease: time.Minute}},
		persist.Rule{Name: "p2", Filter: "pubsub/+", Store: ps, Offline: persist.Fetch{Lease: time.Minute}},
		persist.Rule{Name: "o", Filter: "other/#", Store: other},
	)
	got, err := r.FetchOffline(ctx, "c1", "#", persist.Fetch{Lease: 10 * time.Second, Mode: persist.Queue})
	if err != nil {
		t.Fatal(err)
	}
	// In ID order, deduplicated, each kept only if its rule's filter
	// matches: "elsewhere" and pubsub's queue/a are dropped.
	if want := []string{"01", "02", "05", "07"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("FetchOffline = %q, want %q", ids(got), want)
	}
	wantQ := fetchCall{"c1", "queue/#", persist.Fetch{Mode: persist.Queue, Limit: 5, Since: 2 * time.Hour, Lease: 10 * time.Second}}
	if !reflect.DeepEqual(qs.fetches, []fetchCall{wantQ}) {
		t.Errorf("queue store asked %+v, want %+v", qs.fetches, wantQ)
	}
	// Two fanout rules on one store with the same options share one call.
	wantP := fetchCall{"c1", "#", persist.Fetch{Mode: persist.Fanout, Lease: 10 * time.Second}}
	if !reflect.DeepEqual(ps.fetches, []fetchCall{wantP}) {
		t.Errorf("pubsub store asked %+v, want %+v", ps.fetches, wantP)
	}
	if len(other.fetches) != 1 {
		t.Errorf("other store asked %d times, want 1", len(other.fetches))
	}

	// A filter that overlaps only some rules asks only their stores.
	got, err = r.FetchOffline(ctx, "c1", "pubsub/a", persist.Fetch{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"01"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("FetchOffline(pubsub/a) = %q, want %q", ids(got), want)
	}
	if len(qs.fetches) != 1 || len(other.fetches) != 1 || ps.fetches[1].filter != "pubsub/a" {
		t.Errorf("FetchOffline(pubsub/a) asked queue %d, other %d times, pubsub with %q", len(qs.fetches)-1, len(other.fetches)-1, ps.fetches[1].filter)
	}

	for _, bad := range []struct {
		filter string
		opt    persist.Fetch
	}{{"a/#/b", persist.Fetch{}}, {"#", persist.Fetch{Limit: -1}}, {"#", persist.Fetch{Since: -1}}} {
		if _, err := r.FetchOffline(ctx, "c1", bad.filter, bad.opt); !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("FetchOffline(%q, %+v) = %v, want ErrInvalid", bad.filter, bad.opt, err)
		}
	}
}

// TestRouterFetchQueueFilter checks that a queue store is asked only for
// the topics both the rule and the fetch match, so it claims nothing the
// Router would drop.
func TestRouterFetchQueueFilter(t *testing.T) {
	tests := []struct{ rule, fetch, want string }{
		{"#", "a/b", "a/b"},
		{"queue/#", "#", "queue/#"},
		{"queue/#", "queue/x/+", "queue/x/+"},
		{"a/+/c", "a/b/#", "a/b/c"},
		{"+/b", "a/+", "a/b"},
		{"a/#", "+/b/#", "a/b/#"},
		{"a/#", "a", "a"},
		{"+/#", "x/#", "x/#"},
		{"a/+", "+/+", "a/+"},
		{"queue/#", "$share/g/+/x", "queue/x"},
		{"$SYS/#", "$SYS/+/load", "$SYS/+/load"},
	}
	for _, tt := range tests {
		s := newRec("q")
		r := mustRouter(t, persist.Rule{Filter: tt.rule, Store: s, Mode: persist.Queue})
		if _, err := r.FetchOffline(context.Background(), "c", tt.fetch, persist.Fetch{}); err != nil {
			t.Fatal(err)
		}
		if len(s.fetches) != 1 || s.fetches[0].filter != tt.want {
			t.Errorf("rule %q, fetch %q: store asked %+v, want filter %q", tt.rule, tt.fetch, s.fetches, tt.want)
			continue
		}
		inner := tt.fetch
		if _, in, ok := topic.Shared(tt.fetch); ok {
			inner = in
		}
		if !topic.Subsumes(tt.rule, tt.want) || !topic.Subsumes(inner, tt.want) {
			t.Errorf("rule %q, fetch %q: %q is not inside both", tt.rule, tt.fetch, tt.want)
		}
	}
	// A fetch that cannot overlap asks nothing.
	s := newRec("q")
	r := mustRouter(t, persist.Rule{Filter: "#", Store: s, Mode: persist.Queue})
	if _, err := r.FetchOffline(context.Background(), "c", "$SYS/x", persist.Fetch{}); err != nil || len(s.fetches) != 0 {
		t.Errorf("rule # asked for $SYS/x: %v, %+v", err, s.fetches)
	}
}

func TestRouterFetchLimitNeverDropsClaims(t *testing.T) {
	ctx := context.Background()
	q1, q2, fan := newRec("q1"), newRec("q2"), newRec("fan")
	q1.hold = []*persist.Message{msg("10", "q1/a"), msg("11", "q1/b"), msg("12", "q1/c")}
	q2.hold = []*persist.Message{msg("20", "q2/a"), msg("21", "q2/b"), msg("22", "q2/c")}
	fan.hold = []*persist.Message{msg("01", "f/a"), msg("02", "f/b"), msg("03", "f/c")}
	r := mustRouter(t,
		persist.Rule{Filter: "q1/#", Store: q1, Mode: persist.Queue, Offline: persist.Fetch{Limit: 100}},
		persist.Rule{Filter: "f/#", Store: fan},
		persist.Rule{Filter: "q2/#", Store: q2, Mode: persist.Queue},
	)
	limits := func(s *recStore) (out []int) {
		for _, f := range s.fetches {
			out = append(out, f.opt.Limit)
		}
		return out
	}

	// Limit 4: q1 is asked for 4 (gets 3), q2 for the 1 left; the fanout
	// store, whose messages have lower IDs, is not asked at all.
	got, err := r.FetchOffline(ctx, "c", "#", persist.Fetch{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10", "11", "12", "20"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("Limit 4: got %q, want %q", ids(got), want)
	}
	if !reflect.DeepEqual(limits(q1), []int{4}) || !reflect.DeepEqual(limits(q2), []int{1}) || len(fan.fetches) != 0 {
		t.Errorf("Limit 4: asked q1 %v, q2 %v, fan %v", limits(q1), limits(q2), limits(fan))
	}

	// Limit 8: 6 queue messages, then fanout for the 2 left.
	got, err = r.FetchOffline(ctx, "c", "#", persist.Fetch{Limit: 8})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"01", "02", "10", "11", "12", "20", "21", "22"}; !reflect.DeepEqual(ids(got), want) {
		t.Errorf("Limit 8: got %q, want %q", ids(got), want)
	}
	if limits(fan)[0] != 2 {
		t.Errorf("Limit 8: fanout asked for %d, want 2", limits(fan)[0])
	}

	// No limit: everything, rules' defaults per store.
	got, err = r.FetchOffline(ctx, "c", "#", persist.Fetch{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 9 || !reflect.DeepEqual(limits(q1)[2], 100) {
		t.Errorf("no limit: got %q, q1 asked for %v", ids(got), limits(q1))
	}
}

func TestRouterFetchPartialError(t *testing.T) {
	q, bad := newRec("q"), newRec("bad")
	q.hold = []*persist.Message{msg("1", "q/a")}
	bad.err = errors.New("down")
	r := mustRouter(t,
		persist.Rule{Name: "q", Filter: "q/#", Store: q, Mode: persist.Queue},
		persist.Rule{Name: "bad", Filter: "b/#", Store: bad, Mode: persist.Queue},
	)
	for _, limit := range []int{0, 5} {
		got, err := r.FetchOffline(context.Background(), "c", "#", persist.Fetch{Limit: limit})
		if err == nil || !strings.Contains(err.Error(), `rule "bad": FetchOffline: down`) {
			t.Errorf("limit %d: error %v, want the failing rule's", limit, err)
		}
		if !reflect.DeepEqual(ids(got), []string{"1"}) {
			t.Errorf("limit %d: got %q with the error, want the claimed message", limit, ids(got))
		}
	}
}

func TestRouterLookups(t *testing.T) {
	ctx := context.Background()
	a, b := newRec("a"), newRec("b")
	a.holdSubs = []persist.Subscription{{Filter: "queue/x", QoS: 1}, {Filter: "+/x", QoS: 1}}
	b.holdSubs = []persist.Subscription{{Filter: "pubsub/y", QoS: 2}, {Filter: "+/x", QoS: 0}}
	a.holdRetain = []*persist.Message{msg("1", "queue/r"), msg("2", "pubsub/ignored")}
	b.holdRetain = []*persist.Message{msg("3", "pubsub/r"), msg("4", "queue/r")}
	a.holdClient = &persist.Client{ID: "c", Node: "from-a"}
	b.holdClient = &persist.Client{ID: "c", Node: "from-b"}
	r := mustRouter(t,
		persist.Rule{Filter: "queue/#", Store: a, Mode: persist.Queue},
		persist.Rule{Filter: "pubsub/#", Store: b},
	)
	subs, err := r.Subscriptions(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	want := []persist.Subscription{{Filter: "+/x", QoS: 1}, {Filter: "pubsub/y", QoS: 2}, {Filter: "queue/x", QoS: 1}}
	if !reflect.DeepEqual(subs, want) {
		t.Errorf("Subscriptions = %+v, want %+v (both stores, first wins, by filter)", subs, want)
	}
	ret, err := r.Retained(ctx, "#")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ret); !reflect.DeepEqual(got, []string{"3", "1"}) {
		t.Errorf("Retained(#) = %q, want [3 1] (by topic, each store only for its rules' topics)", got)
	}
	if _, err := r.Retained(ctx, "queue/r"); err != nil || b.count("Retained") != 1 {
		t.Errorf("Retained(queue/r) asked the pubsub store (%d calls), err %v", b.count("Retained"), err)
	}
	c, err := r.Client(ctx, "c")
	if err != nil || c.Node != "from-a" {
		t.Errorf("Client = %+v, %v; want the first rule's store", c, err)
	}

	// Stores without lookups.
	r2 := mustRouter(t, persist.Rule{Store: &pubOnly{rec: newRec("p")}})
	if _, err := r2.Subscriptions(ctx, "c"); !errors.Is(err, persist.ErrUnsupported) {
		t.Errorf("Subscriptions without a lookup store: %v", err)
	}
	if _, err := r2.Retained(ctx, "#"); !errors.Is(err, persist.ErrUnsupported) {
		t.Errorf("Retained without a lookup store: %v", err)
	}
	if _, err := r2.Client(ctx, "c"); !errors.Is(err, persist.ErrUnsupported) {
		t.Errorf("Client without a lookup store: %v", err)
	}
}

func TestRouterPing(t *testing.T) {
	a, b, c := newRec("a"), newRec("b"), newRec("c")
	b.pingErr = errors.New("b is down")
	c.pingErr = errors.New("c is down")
	r := mustRouter(t,
		persist.Rule{Name: "a1", Filter: "a/#", Store: a},
		persist.Rule{Name: "a2", Filter: "x/#", Store: a},
		persist.Rule{Name: "b", Store: b, Events: persist.OnConnected},
		persist.Rule{Name: "c", Store: c, Events: persist.OnConnected},
	)
	err := r.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "b is down") || !strings.Contains(err.Error(), "c is down") {
		t.Errorf("Ping = %v, want both failures", err)
	}
	if a.count("Ping") != 1 || b.count("Ping") != 1 {
		t.Errorf("pings: a %d, b %d; want each store once", a.count("Ping"), b.count("Ping"))
	}
}

func TestRouterClose(t *testing.T) {
	ctx := context.Background()
	s := newRec("s")
	r := mustRouter(t, persist.Rule{Store: s})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, e1 := r.FetchOffline(ctx, "c", "#", persist.Fetch{})
	_, e2 := r.Subscriptions(ctx, "c")
	_, e3 := r.Retained(ctx, "#")
	_, e4 := r.Client(ctx, "c")
	errs := map[string]error{
		"Connected":    r.Connected(ctx, &persist.Client{ID: "c"}),
		"Subscribed":   r.Subscribed(ctx, "c", []persist.Subscription{{Filter: "a"}}, nil),
		"Publish":      r.Publish(ctx, &persist.Message{Topic: "a", QoS: 1}),
		"Acked":        r.Acked(ctx, "c", persist.Ack{ID: "1", Topic: "a"}),
		"Retain":       r.Retain(ctx, &persist.Message{Topic: "a"}),
		"FetchOffline": e1, "Subscriptions": e2, "Retained": e3, "Client": e4,
		"Ping": r.Ping(ctx),
	}
	for verb, err := range errs {
		if !errors.Is(err, persist.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", verb, err)
		}
	}
	if len(s.calls) != 0 {
		t.Errorf("store called after Close: %q", s.calls)
	}
	if s.closeCalled {
		t.Error("Router.Close closed the caller's store")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestRouterConcurrent(t *testing.T) {
	ctx := context.Background()
	a, b, c := newRec("a"), newRec("b"), newRec("c")
	b.hold = []*persist.Message{msg("1", "q/x")}
	r := mustRouter(t,
		persist.Rule{Name: "a", Filter: "t/+/a", Store: a},
		persist.Rule{Name: "b", Filter: "q/#", Store: b, Mode: persist.Queue},
		persist.Rule{Name: "c", Filter: "#", Store: c, QoS0: true},
	)
	const workers, each = 32, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m1 := &persist.Message{Topic: fmt.Sprintf("t/%d/a", w), QoS: byte(i % 2)}
				m2 := &persist.Message{Topic: fmt.Sprintf("q/%d", i), QoS: 1}
				if err := r.Publish(ctx, m1, m2); err != nil {
					t.Error(err)
					return
				}
				if err := r.Acked(ctx, "c", persist.Ack{ID: m2.ID, Topic: m2.Topic}); err != nil {
					t.Error(err)
					return
				}
				if _, err := r.FetchOffline(ctx, "c", "q/+", persist.Fetch{Limit: 1}); err != nil {
					t.Error(err)
					return
				}
				_ = r.Stats()
			}
		})
	}
	wg.Wait()
	const n = workers * each
	if got, want := len(a.topics()), n/2; got != want {
		t.Errorf("a stored %d, want %d (QoS 1 half)", got, want)
	}
	if got := len(b.topics()); got != n {
		t.Errorf("b stored %d, want %d", got, n)
	}
	if got := len(c.topics()); got != 2*n {
		t.Errorf("c stored %d, want %d", got, 2*n)
	}
	seen := map[string]bool{}
	for _, m := range c.published {
		for _, x := range m {
			if seen[x.ID] {
				t.Fatalf("ID %s given twice", x.ID)
			}
			seen[x.ID] = true
		}
	}
	if st := statsOf(r, "c"); st.Matched != 3*n || st.Written != 3*n { // 2n publishes + n acks
		t.Errorf("Stats c = %+v", st)
	}
	if st := statsOf(r, "b"); st.Matched != 2*n || st.Written != 2*n { // n publishes + n acks
		t.Errorf("Stats b = %+v", st)
	}
}
func TestParseEvent(t *testing.T) {
	tests := []struct {
		in   string
		want persist.Event
	}{
		{"client.connected", persist.OnConnected},
		{"client.disconnected", persist.OnConnected},
		{"session.subscribed", persist.OnSubscribed},
		{"session.unsubscribed", persist.OnSubscribed},
		{"message.publish", persist.OnPublish},
		{"message.acked", persist.OnAcked},
		{"message.retain", persist.OnRetain},
		{"message.fetch", persist.OnFetch},
		{"message.delivered", persist.OnDelivered},
		{"publish", persist.OnPublish},
		{"message.publish|message.retain", persist.OnPublish | persist.OnRetain},
		{" connected , acked ", persist.OnConnected | persist.OnAcked},
		{"all", persist.AllEvents},
		{"*", persist.AllEvents},
	}
	for _, tt := range tests {
		got, err := persist.ParseEvent(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseEvent(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "|", "message.published", "client.connect"} {
		_, err := persist.ParseEvent(bad)
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("ParseEvent(%q) error = %v, want ErrInvalid", bad, err)
			continue
		}
		if !strings.Contains(err.Error(), "message.publish") {
			t.Errorf("ParseEvent(%q) error %q does not list the known events", bad, err)
		}
	}
}

func TestEventString(t *testing.T) {
	tests := []struct {
		e    persist.Event
		want string
	}{
		{0, "none"},
		{persist.OnPublish, "message.publish"},
		{persist.OnConnected | persist.OnFetch, "client.connected|message.fetch"},
		{persist.AllEvents, "client.connected|session.subscribed|message.publish|message.acked|message.retain|message.fetch"},
		{persist.OnAcked | 1<<12, "message.acked|event(0x1000)"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("Event(%d).String() = %q, want %q", uint16(tt.e), got, tt.want)
		}
	}
	// String and ParseEvent are inverses for every known set.
	for e := persist.Event(1); e <= persist.AllEvents|persist.OnDelivered; e++ {
		back, err := persist.ParseEvent(e.String())
		if err != nil || back != e {
			t.Fatalf("ParseEvent(%q) = %v, %v; want %v", e.String(), back, err, e)
		}
	}
	if persist.AllEvents.Has(persist.OnDelivered) {
		t.Error("AllEvents includes the reserved OnDelivered")
	}
	if !persist.AllEvents.Has(persist.OnPublish | persist.OnFetch) {
		t.Error("AllEvents lacks OnPublish|OnFetch")
	}
}

// TestRouterFirstRuleDecidesMode is the broker's default rule set: topics
// under queue/ are queued, every other topic fanout, in one store.
func TestRouterFirstRuleDecidesMode(t *testing.T) {
	s := newRec("s")
	r := mustRouter(t,
		persist.Rule{Name: "queues", Filter: "queue/#", Store: s, Mode: persist.Queue},
		persist.Rule{Name: "fanout", Filter: "#", Store: s, Mode: persist.Fanout},
	)
	err := r.Publish(context.Background(),
		&persist.Message{Topic: "queue/jobs", QoS: 1},
		&persist.Message{Topic: "sensor/1", QoS: 1},
		&persist.Message{Topic: "queue", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := s.published[0]
	if len(got) != 3 {
		t.Fatalf("store got %d messages, want 3 (each once)", len(got))
	}
	for i, want := range []persist.Mode{persist.Queue, persist.Fanout, persist.Queue} {
		if got[i].Mode != want {
			t.Errorf("%s stored as %v, want %v", got[i].Topic, got[i].Mode, want)
		}
	}
}
