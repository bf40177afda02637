package persisttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// Harness tells the suite how to make stores, and how to read back what a
// write-only store wrote.
type Harness struct {
	// New returns a new, empty, ready (migrated) store for one test. Stores
	// from different calls must not see each other's data (fresh database,
	// schema, table prefix or key prefix). The harness registers its own
	// cleanup with t.Cleanup.
	New func(t testing.TB) persist.Store
	// ReadBack returns every message st (a store from New) has written, in
	// any order, as far as the store keeps them (see Features.Drops). It
	// is for a write-only store: one whose Events (persist.EventSupporter)
	// leave out persist.OnFetch, such as a time-series writer. The suite
	// then reads what it published through ReadBack where it would call
	// FetchOffline, and runs every case that applies to a store that only
	// writes: round trips, batches, idempotence, expired messages, invalid
	// input, cancelled contexts, use after Close, concurrency. ReadBack
	// reads the database behind the store with a client of the harness's
	// own (as gocloud's runtimevar drivertest reads a variable back), and
	// fails t itself when it cannot. It is not called for a store that
	// handles OnFetch, and must be set for one that does not.
	ReadBack func(t testing.TB, st persist.Store) []*persist.Message
	// Shared, when set, returns another store value on the data of st (a
	// store from New), as a second broker node sharing the database sees
	// it: a store opened anew with the same database, prefix and tables.
	// The harness registers its cleanup with t.Cleanup. The cases of
	// several nodes (SkipNothing) use st twice when Shared is nil.
	Shared func(t testing.TB, st persist.Store) persist.Store
	// Features declares what the store's type does not tell; the zero
	// value declares nothing.
	Features Features
}

// Features declares what the suite cannot find out from a store itself.
//
// What a store tells, the suite finds on its own: its lookups and
// lifecycle by type assertion (persist.ClientLookup,
// persist.SubscriptionLookup, persist.RetainLookup, persist.Pinger,
// persist.Closer), the verbs it handles by its declared events
// (persist.EventSupporter: a store whose Events leave out OnRetain keeps
// no retained messages; one that leaves out OnFetch is write-only, see
// Harness.ReadBack), and its sizes by persist.Limiter. A case that needs
// what the store lacks is skipped, saying so; a verb the store does not
// handle must return an error matching persist.ErrUnsupported.
//
// The message modes have no interface or event of their own (both go
// through Publish and FetchOffline), so a store that keeps only one says
// so here.
type Features struct {
	// NoQueue: the store keeps no queue (one-to-one) messages; its
	// FetchOffline of Mode Queue returns an error matching
	// persist.ErrUnsupported.
	NoQueue bool
	// NoFanout: the store keeps no fanout (many-to-many) messages; its
	// FetchOffline of Mode Fanout returns an error matching
	// persist.ErrUnsupported.
	NoFanout bool
	// MaxPayload caps the payloads the suite stores (the largest is 1 MiB,
	// or the store's Limits.Payload when smaller) to save time; 0 means
	// no cap.
	MaxPayload int
	// Drops lists the message fields a write-only store does not keep
	// (a time-series writer keeps what its template maps): the suite does
	// not compare them in what Harness.ReadBack returns. ID, Topic and
	// Payload are always compared. A store that handles OnFetch keeps
	// every field and declares none.
	Drops Fields
}

// Fields is a set of persist.Message fields.
type Fields uint16

// The fields of a message that Features.Drops may list.
const (
	FieldQoS Fields = 1 << iota
	FieldRetain
	FieldFrom
	FieldUsername
	FieldPeerHost
	FieldNode
	FieldTime
	FieldExpiry
	FieldMode
	FieldProps
)

// TimeTolerance is how far a stored time may be from the time given to the
// store: SQL datetimes may keep whole seconds only.
const TimeTolerance = time.Second

// NewMessage returns a fanout message of QoS 1 to topic with a new ID (see
// persist.NewID) and Time set to now.
func NewMessage(topic string, payload []byte) *persist.Message {
	return &persist.Message{
		ID:      persist.NewID(),
		Topic:   topic,
		Payload: payload,
		QoS:     1,
		Time:    time.Now(),
	}
}

// newMessageAt returns a message whose Time is at and whose ID carries the
// same time, so that ID order is time order also for times in the past
// (persist.NewIDAt never goes back in time within a process).
func newMessageAt(topic string, payload []byte, at time.Time) *persist.Message {
	m := NewMessage(topic, payload)
	m.ID = ulid.MustNew(ulid.Timestamp(at), rand.Reader).String()
	m.Time = at
	return m
}

// Run runs the conformance suite against the stores h makes. It makes one
// store first to find what the store's type implements and declares.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("persisttest: Harness.New is nil")
	}
	s := newSuite(t, h)
	const (
		pub   = persist.OnPublish
		read  = persist.OnPublish | persist.OnFetch
		acked = persist.OnPublish | persist.OnFetch | persist.OnAcked
	)
	type testCase struct {
		name string
		need persist.Event // the events the case uses throughout
		fn   func(*testing.T)
	}
	cases := []testCase{
		{"Capabilities", 0, s.testCapabilities},
		{"Isolation", pub, s.testIsolation},
		{"Client", persist.OnConnected, s.testClient},
		{"Subscriptions", persist.OnSubscribed, s.testSubscriptions},
		{"RoundTrip", pub, s.testRoundTrip},
		{"Fanout", acked, s.testFanout},
		{"SkipNothing", acked, s.testSkipNothing},
		{"Wildcards", read, s.testWildcards},
		{"Limits", acked, s.testLimits},
		{"Expiry", read, s.testExpiry},
		{"Queue", acked, s.testQueue},
		{"Publish", pub, s.testPublish},
		{"Retained", persist.OnRetain, s.testRetained},
		{"Concurrency", pub, s.testConcurrency},
		{"CancelledContext", 0, s.testCancelled},
		{"Closed", 0, s.testClosed},
		{"Invalid", 0, s.testInvalid},
		{"Watch", pub, s.testWatch},
		{"Claim", 0, s.testClaim},
	}
	if f := h.Features; f.NoQueue || f.NoFanout || s.caps.events != persist.AllEvents {
		cases = append(cases, testCase{"Unsupported", 0, s.testUnsupported})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s.need(t, c.need)
			c.fn(t)
		})
	}
}

type suite struct {
	h    Harness
	caps caps
	n    atomic.Int64
}

// caps is what a store's type implements and declares.
type caps struct {
	typ                                    string        // the store's type, as %T prints it
	events                                 persist.Event // the events it handles (persist.AllEvents without EventSupporter)
	client, subs, retained, pinger, closer bool
}

func capsOf(st persist.Store) caps {
	c := caps{typ: fmt.Sprintf("%T", st), events: persist.AllEvents}
	if es, ok := st.(persist.EventSupporter); ok {
		c.events = es.Events()
	}
	_, c.client = st.(persist.ClientLookup)
	_, c.subs = st.(persist.SubscriptionLookup)
	_, c.retained = st.(persist.RetainLookup)
	_, c.pinger = st.(persist.Pinger)
	_, c.closer = st.(persist.Closer)
	return c
}

func (c caps) String() string {
	var has []string
	for _, x := range []struct {
		ok   bool
		name string
	}{{c.client, "ClientLookup"}, {c.subs, "SubscriptionLookup"}, {c.retained, "RetainLookup"}, {c.pinger, "Pinger"}, {c.closer, "Closer"}} {
		if x.ok {
			has = append(has, "persist."+x.name)
		}
	}
	if len(has) == 0 {
		has = append(has, "no companion interface")
	}
	return fmt.Sprintf("%s handles %v; implements %s", c.typ, c.events, strings.Join(has, ", "))
}

// newSuite returns the suite of h, with the capabilities of a first store.
func newSuite(t testing.TB, h Harness) *suite {
	t.Helper()
	s := &suite{h: h}
	s.caps = capsOf(s.store(t))
	return s
}

// uniq returns prefix followed by a number no other call returned.
func (s *suite) uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, s.n.Add(1))
}

// store returns a fresh store from the harness.
func (s *suite) store(t testing.TB) persist.Store {
	t.Helper()
	st := s.h.New(t)
	if st == nil {
		t.Fatal("Harness.New returned a nil store")
	}
	return st
}

// has reports whether the store handles every event of e.
func (s *suite) has(e persist.Event) bool { return s.caps.events.Has(e) }

// need skips t unless the store handles every event of e.
func (s *suite) need(t testing.TB, e persist.Event) {
	t.Helper()
	if !s.has(e) {
		t.Skipf("store %s does not handle %v (its Events are %v)", s.caps.typ, e&^s.caps.events, s.caps.events)
	}
}

// writeOnly reports whether the store is read through Harness.ReadBack.
func (s *suite) writeOnly() bool { return !s.has(persist.OnFetch) }

func (s *suite) maxPayload(st persist.Store) int {
	const mib = 1 << 20
	n := mib
	if p := s.h.Features.MaxPayload; p > 0 {
		n = min(n, p)
	}
	if p := persist.LimitsOf(st).Payload; p > 0 {
		n = min(n, p)
	}
	return n
}

// modes returns the message modes and whether the store declares it lacks
// each.
func (s *suite) modes() []struct {
	mode persist.Mode
	lack string
} {
	f := s.h.Features
	return []struct {
		mode persist.Mode
		lack string
	}{
		{persist.Fanout, lackIf(f.NoFanout, "NoFanout")},
		{persist.Queue, lackIf(f.NoQueue, "NoQueue")},
	}
}

func lackIf(lacks bool, name string) string {
	if lacks {
		return name
	}
	return ""
}

func skipLack(t testing.TB, name string) {
	t.Helper()
	t.Skipf("store declares Features.%s", name)
}

// eachMode runs fn as parallel subtests "Fanout" and "Queue", skipping a
// mode the store declares it lacks.
func (s *suite) eachMode(t *testing.T, fn func(t *testing.T, mode persist.Mode)) {
	for _, m := range s.modes() {
		t.Run(modeName(m.mode), func(t *testing.T) {
			t.Parallel()
			if m.lack != "" {
				skipLack(t, m.lack)
			}
			fn(t, m.mode)
		})
	}
}

func modeName(m persist.Mode) string {
	if m == persist.Queue {
		return "Queue"
	}
	return "Fanout"
}

func (s *suite) needFanout(t testing.TB) {
	t.Helper()
	if s.h.Features.NoFanout {
		skipLack(t, "NoFanout")
	}
}

func (s *suite) needQueue(t testing.TB) {
	t.Helper()
	if s.h.Features.NoQueue {
		skipLack(t, "NoQueue")
	}
}

// anyMode returns a mode the store has, skipping t when it has none.
func (s *suite) anyMode(t testing.TB) persist.Mode {
	t.Helper()
	switch {
	case !s.h.Features.NoFanout:
		return persist.Fanout
	case !s.h.Features.NoQueue:
		return persist.Queue
	}
	t.Skip("store declares Features.NoFanout and Features.NoQueue")
	return 0
}

// clientLookup returns st as a persist.ClientLookup, skipping t when the
// store does not handle OnConnected or has no such lookup.
func (s *suite) clientLookup(t testing.TB, st persist.Store) persist.ClientLookup {
	t.Helper()
	s.need(t, persist.OnConnected)
	cl, ok := st.(persist.ClientLookup)
	if !ok {
		t.Skipf("store %T does not implement persist.ClientLookup", st)
	}
	return cl
}

// subLookup is clientLookup for persist.SubscriptionLookup.
func (s *suite) subLookup(t testing.TB, st persist.Store) persist.SubscriptionLookup {
	t.Helper()
	s.need(t, persist.OnSubscribed)
	sl, ok := st.(persist.SubscriptionLookup)
	if !ok {
		t.Skipf("store %T does not implement persist.SubscriptionLookup", st)
	}
	return sl
}

// retainLookup is clientLookup for persist.RetainLookup.
func (s *suite) retainLookup(t testing.TB, st persist.Store) persist.RetainLookup {
	t.Helper()
	s.need(t, persist.OnRetain)
	rl, ok := st.(persist.RetainLookup)
	if !ok {
		t.Skipf("store %T does not implement persist.RetainLookup", st)
	}
	return rl
}

// hasClientLookup etc. tell whether a case can read state back.
func (s *suite) hasClientLookup(st persist.Store) (persist.ClientLookup, bool) {
	cl, ok := st.(persist.ClientLookup)
	return cl, ok && s.has(persist.OnConnected)
}

func (s *suite) hasSubLookup(st persist.Store) (persist.SubscriptionLookup, bool) {
	sl, ok := st.(persist.SubscriptionLookup)
	return sl, ok && s.has(persist.OnSubscribed)
}

func (s *suite) hasRetainLookup(st persist.Store) (persist.RetainLookup, bool) {
	rl, ok := st.(persist.RetainLookup)
	return rl, ok && s.has(persist.OnRetain)
}

// read returns what st holds of mode on the topics matching filter, in
// ID order: what clientID's FetchOffline returns, or for a write-only
// store what Harness.ReadBack returns of it (leaving the mode out when
// the store drops it).
func (s *suite) read(t testing.TB, st persist.Store, clientID, filter string, mode persist.Mode) []*persist.Message {
	t.Helper()
	if !s.writeOnly() {
		return fetch(t, st, clientID, filter, persist.Fetch{Mode: mode})
	}
	if s.h.ReadBack == nil {
		t.Skipf("store %s is write-only (no OnFetch) and Harness.ReadBack is nil", s.caps.typ)
	}
	var out []*persist.Message
	for i, m := range s.h.ReadBack(t, st) {
		if m == nil {
			t.Fatalf("Harness.ReadBack: message %d is nil", i)
		}
		if topic.Match(filter, m.Topic) && (s.h.Features.Drops&FieldMode != 0 || m.Mode == mode) {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// ignored returns the fields checkMessage leaves out of messages read
// back: those a write-only store drops, and the mode unless mode is set.
func (s *suite) ignored(mode bool) Fields {
	var f Fields
	if s.writeOnly() {
		f = s.h.Features.Drops
	}
	if !mode {
		f |= FieldMode
	}
	return f
}

// publish stores msgs and fails t on error.
func publish(t testing.TB, st persist.Store, msgs ...*persist.Message) {
	t.Helper()
	if err := st.Publish(t.Context(), msgs...); err != nil {
		t.Fatalf("Publish(%s): %v", fmtMsgs(msgs), err)
	}
}

// fetch calls FetchOffline and fails t on error.
func fetch(t testing.TB, st persist.Store, clientID, filter string, opt persist.Fetch) []*persist.Message {
	t.Helper()
	got, err := st.FetchOffline(t.Context(), clientID, filter, opt)
	if err != nil {
		t.Fatalf("FetchOffline(%q, %q, %+v): %v", clientID, filter, opt, err)
	}
	for i, m := range got {
		if m == nil {
			t.Fatalf("FetchOffline(%q, %q, %+v): message %d is nil", clientID, filter, opt, i)
		}
	}
	return got
}

// ack calls Acked and fails t on error.
func ack(t testing.TB, st persist.Store, clientID string, msgs ...*persist.Message) {
	t.Helper()
	acks := make([]persist.Ack, len(msgs))
	for i, m := range msgs {
		acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
	}
	if err := st.Acked(t.Context(), clientID, acks...); err != nil {
		t.Fatalf("Acked(%q, %s): %v", clientID, fmtMsgs(msgs), err)
	}
}

// subscribe calls Subscribed and fails t on error.
func subscribe(t testing.TB, st persist.Store, clientID string, subs []persist.Subscription, removed []string) {
	t.Helper()
	if err := st.Subscribed(t.Context(), clientID, subs, removed); err != nil {
		t.Fatalf("Subscribed(%q, %+v, %q): %v", clientID, subs, removed, err)
	}
}

func retain(t testing.TB, st persist.Store, m *persist.Message) {
	t.Helper()
	if err := st.Retain(t.Context(), m); err != nil {
		t.Fatalf("Retain(%s): %v", fmtMsg(m), err)
	}
}

func retained(t testing.TB, rl persist.RetainLookup, filter string) []*persist.Message {
	t.Helper()
	got, err := rl.Retained(t.Context(), filter)
	if err != nil {
		t.Fatalf("Retained(%q): %v", filter, err)
	}
	for i, m := range got {
		if m == nil {
			t.Fatalf("Retained(%q): message %d is nil", filter, i)
		}
	}
	return got
}

// withMode sets the mode of msgs and returns them.
func withMode(mode persist.Mode, msgs ...*persist.Message) []*persist.Message {
	for _, m := range msgs {
		m.Mode = mode
	}
	return msgs
}

// series returns n messages of mode to topic with payloads "<topic> #i".
func series(mode persist.Mode, topic string, n int) []*persist.Message {
	out := make([]*persist.Message, n)
	for i := range out {
		out[i] = NewMessage(topic, fmt.Appendf(nil, "%s #%d", topic, i))
		out[i].Mode = mode
	}
	return out
}

func fmtMsg(m *persist.Message) string {
	if m == nil {
		return "<nil>"
	}
	p := m.Payload
	suffix := ""
	if len(p) > 24 {
		p, suffix = p[:24], "…"
	}
	return fmt.Sprintf("{%s %q %q%s}", m.ID, m.Topic, p, suffix)
}

func fmtMsgs(msgs []*persist.Message) string {
	if len(msgs) > 20 {
		return fmt.Sprintf("[%d messages: %s … %s]", len(msgs), fmtMsg(msgs[0]), fmtMsg(msgs[len(msgs)-1]))
	}
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = fmtMsg(m)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// sameIDs checks that got holds exactly the messages of want, in that
// order, compared by ID.
func sameIDs(t testing.TB, what string, got, want []*persist.Message) bool {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].ID == want[i].ID
	}
	if !ok {
		t.Errorf("%s:\n got %d %s\nwant %d %s", what, len(got), fmtMsgs(got), len(want), fmtMsgs(want))
	}
	return ok
}

// msgs is a readable shorthand for a list of messages.
func msgs(m ...*persist.Message) []*persist.Message { return m }

// checkMessage reports every field of got that differs from want, but
// for the fields in ignore.
func checkMessage(t testing.TB, what string, got, want *persist.Message, ignore Fields) {
	t.Helper()
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	cmp := func(f Fields) bool { return ignore&f == 0 }
	if got.ID != want.ID {
		add("ID %q, want %q", got.ID, want.ID)
	}
	if got.Topic != want.Topic {
		add("Topic %q, want %q", got.Topic, want.Topic)
	}
	if got.Payload == nil {
		add("Payload is nil, want an empty non-nil slice or bytes")
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		add("Payload differs: %s", bytesDiff(got.Payload, want.Payload))
	}
	if cmp(FieldQoS) && got.QoS != want.QoS {
		add("QoS %d, want %d", got.QoS, want.QoS)
	}
	if cmp(FieldRetain) && got.Retain != want.Retain {
		add("Retain %v, want %v", got.Retain, want.Retain)
	}
	if cmp(FieldFrom) && got.From != want.From {
		add("From %q, want %q", got.From, want.From)
	}
	if cmp(FieldUsername) && got.Username != want.Username {
		add("Username %q, want %q", got.Username, want.Username)
	}
	if cmp(FieldPeerHost) && got.PeerHost != want.PeerHost {
		add("PeerHost %q, want %q", got.PeerHost, want.PeerHost)
	}
	if cmp(FieldNode) && got.Node != want.Node {
		add("Node %q, want %q", got.Node, want.Node)
	}
	if msg := timeDiff(got.Time, want.Time); cmp(FieldTime) && msg != "" {
		add("Time %s", msg)
	}
	if msg := timeDiff(got.Expiry, want.Expiry); cmp(FieldExpiry) && msg != "" {
		add("Expiry %s", msg)
	}
	if cmp(FieldMode) && got.Mode != want.Mode {
		add("Mode %v, want %v", got.Mode, want.Mode)
	}
	if cmp(FieldProps) {
		d = append(d, propsDiff(got.Props, want.Props)...)
	}
	if len(d) > 0 {
		t.Errorf("%s: message %s differs from what was stored:\n\t%s", what, fmtMsg(want), strings.Join(d, "\n\t"))
	}
}

// propsDiff says how the properties gp differ from wp.
func propsDiff(gp, wp persist.Properties) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	switch {
	case (gp.PayloadFormat == nil) != (wp.PayloadFormat == nil):
		add("Props.PayloadFormat %s, want %s", fmtBytePtr(gp.PayloadFormat), fmtBytePtr(wp.PayloadFormat))
	case gp.PayloadFormat != nil && *gp.PayloadFormat != *wp.PayloadFormat:
		add("Props.PayloadFormat %d, want %d", *gp.PayloadFormat, *wp.PayloadFormat)
	}
	if gp.ContentType != wp.ContentType {
		add("Props.ContentType %q, want %q", gp.ContentType, wp.ContentType)
	}
	if gp.ResponseTopic != wp.ResponseTopic {
		add("Props.ResponseTopic %q, want %q", gp.ResponseTopic, wp.ResponseTopic)
	}
	if !bytes.Equal(gp.CorrelationData, wp.CorrelationData) {
		add("Props.CorrelationData %q, want %q", gp.CorrelationData, wp.CorrelationData)
	}
	if !sameUserProps(gp.User, wp.User) {
		add("Props.User %q, want %q", gp.User, wp.User)
	}
	return d
}

func sameUserProps(a, b []persist.UserProperty) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fmtBytePtr(p *byte) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprintf("&%d", *p)
}

// timeDiff says how got differs from want beyond TimeTolerance, or "".
func timeDiff(got, want time.Time) string {
	switch {
	case want.IsZero() && got.IsZero():
		return ""
	case want.IsZero():
		return fmt.Sprintf("%v, want zero", got.UTC())
	case got.IsZero():
		return fmt.Sprintf("zero, want %v", want.UTC())
	}
	d := got.Sub(want)
	if d < 0 {
		d = -d
	}
	if d > TimeTolerance {
		return fmt.Sprintf("%v (UTC), want %v (UTC) within %v", got.UTC(), want.UTC(), TimeTolerance)
	}
	return ""
}

func bytesDiff(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d bytes, want %d (got %s, want %s)", len(got), len(want), short(got), short(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("byte %d is %#02x, want %#02x (got %s, want %s)", i, got[i], want[i], short(got), short(want))
		}
	}
	return ""
}

func short(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%q…", b[:32])
	}
	return fmt.Sprintf("%q", b)
}

// cancelled returns a context that is already cancelled.
func cancelled(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// wantErr checks that err matches target.
func wantErr(t testing.TB, what string, err, target error) bool {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v (%T), want one matching %v", what, err, err, target)
		return false
	}
	return true
}

// wantInvalid checks that err is what bad input gets: an error matching
// persist.ErrInvalid, not retryable, whose text names each package (or
// store) once (see repeatedPrefix).
func wantInvalid(t testing.TB, what string, err error) bool {
	t.Helper()
	if !wantErr(t, what, err, persist.ErrInvalid) {
		return false
	}
	ok := true
	if persist.IsRetryable(err) {
		t.Errorf("%s: %v is retryable; bad input is not", what, err)
		ok = false
	}
	if p := repeatedPrefix(err.Error()); p != "" {
		t.Errorf("%s: error %q says %q more than once (the style is \"<store>: <Op> <what>: <cause>\")", what, err, p+": ")
		ok = false
	}
	return ok
}

// packageName is a package's or a store's name as an error message starts
// with it: a lower-case word, maybe with a variant in parentheses, such as
// "redisstore", "sqlstore(sqlite)", "memstore" or "topic".
var packageName = regexp.MustCompile(`^[a-z][a-z0-9_.]*(\([a-z0-9_.]+\))?$`)

// repeatedPrefix returns the name of a "<name>: " prefix that msg says
// twice, or "". The segments of msg between ": " that are package names
// are prefixes; the last segment is the cause's text.
func repeatedPrefix(msg string) string {
	segs := strings.Split(msg, ": ")
	seen := map[string]bool{}
	for _, seg := range segs[:len(segs)-1] {
		if !packageName.MatchString(seg) {
			continue
		}
		if seen[seg] {
			return seg
		}
		seen[seg] = true
	}
	return ""
}

// sleepUntil sleeps until deadline.
func sleepUntil(deadline time.Time) {
	time.Sleep(time.Until(deadline))
}

// gap lets the clock move on, so that a moment stored by the store (such as
// a subscription's start) lies strictly between the messages made before
// and after it even where the store keeps milliseconds.
func gap() { time.Sleep(5 * time.Millisecond) }

func quoteDiff(got, want any) string {
	return fmt.Sprintf("%#v, want %#v", got, want)
}
