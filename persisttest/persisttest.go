package persisttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Harness tells the suite how to make stores.
type Harness struct {
	// New returns a new, empty, ready (migrated) store for one test. Stores
	// from different calls must not see each other's data (fresh database,
	// schema, table prefix or key prefix). The harness registers its own
	// cleanup with t.Cleanup.
	New func(t testing.TB) persist.Store
	// Features declares what the store lacks; the zero value means it has
	// everything.
	Features Features
}

// Features declares what a store lacks. Run skips the cases that need a
// declared lack (and says so), and fails a store that lacks something it
// did not declare.
type Features struct {
	// NoQueue: the store keeps no queue (one-to-one) messages.
	NoQueue bool
	// NoFanout: the store keeps no fanout (many-to-many) messages.
	NoFanout bool
	// NoRetain: the store keeps no retained messages.
	NoRetain bool
	// NoClientLookup: the store does not implement persist.ClientLookup.
	NoClientLookup bool
	// NoSubscriptionLookup: the store does not implement
	// persist.SubscriptionLookup.
	NoSubscriptionLookup bool
	// NoRetainLookup: the store does not implement persist.RetainLookup.
	NoRetainLookup bool
	// MaxPayload is the largest payload the store keeps; 0 means at least
	// 1 MiB.
	MaxPayload int
}

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

// Run runs the conformance suite against the stores h makes.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("persisttest: Harness.New is nil")
	}
	s := &suite{h: h}
	type testCase struct {
		name string
		fn   func(*testing.T)
	}
	cases := []testCase{
		{"Capabilities", s.testCapabilities},
		{"Isolation", s.testIsolation},
		{"Client", s.testClient},
		{"Subscriptions", s.testSubscriptions},
		{"RoundTrip", s.testRoundTrip},
		{"Fanout", s.testFanout},
		{"Wildcards", s.testWildcards},
		{"Limits", s.testLimits},
		{"Expiry", s.testExpiry},
		{"Queue", s.testQueue},
		{"Publish", s.testPublish},
		{"Retained", s.testRetained},
		{"Concurrency", s.testConcurrency},
		{"CancelledContext", s.testCancelled},
		{"Closed", s.testClosed},
		{"Invalid", s.testInvalid},
	}
	if f := h.Features; f.NoQueue || f.NoFanout || f.NoRetain {
		cases = append(cases, testCase{"Unsupported", s.testUnsupported})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t)
		})
	}
}

type suite struct {
	h Harness
	n atomic.Int64
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

func (s *suite) maxPayload() int {
	const mib = 1 << 20
	if p := s.h.Features.MaxPayload; p > 0 && p < mib {
		return p
	}
	return mib
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

func (s *suite) clientLookup(t testing.TB, st persist.Store) persist.ClientLookup {
	t.Helper()
	if s.h.Features.NoClientLookup {
		skipLack(t, "NoClientLookup")
	}
	cl, ok := st.(persist.ClientLookup)
	if !ok {
		t.Fatalf("store %T does not implement persist.ClientLookup and Features.NoClientLookup is not set", st)
	}
	return cl
}

func (s *suite) subLookup(t testing.TB, st persist.Store) persist.SubscriptionLookup {
	t.Helper()
	if s.h.Features.NoSubscriptionLookup {
		skipLack(t, "NoSubscriptionLookup")
	}
	sl, ok := st.(persist.SubscriptionLookup)
	if !ok {
		t.Fatalf("store %T does not implement persist.SubscriptionLookup and Features.NoSubscriptionLookup is not set", st)
	}
	return sl
}

func (s *suite) retainLookup(t testing.TB, st persist.Store) persist.RetainLookup {
	t.Helper()
	if s.h.Features.NoRetain {
		skipLack(t, "NoRetain")
	}
	if s.h.Features.NoRetainLookup {
		skipLack(t, "NoRetainLookup")
	}
	rl, ok := st.(persist.RetainLookup)
	if !ok {
		t.Fatalf("store %T does not implement persist.RetainLookup and Features.NoRetainLookup is not set", st)
	}
	return rl
}

// hasClientLookup etc. tell whether a case can read state back.
func (s *suite) hasClientLookup(st persist.Store) (persist.ClientLookup, bool) {
	cl, ok := st.(persist.ClientLookup)
	return cl, ok && !s.h.Features.NoClientLookup
}

func (s *suite) hasSubLookup(st persist.Store) (persist.SubscriptionLookup, bool) {
	sl, ok := st.(persist.SubscriptionLookup)
	return sl, ok && !s.h.Features.NoSubscriptionLookup
}

func (s *suite) hasRetainLookup(st persist.Store) (persist.RetainLookup, bool) {
	rl, ok := st.(persist.RetainLookup)
	return rl, ok && !s.h.Features.NoRetain && !s.h.Features.NoRetainLookup
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

// checkMessage reports every field of got that differs from want. Mode is
// compared only when mode is true.
func checkMessage(t testing.TB, what string, got, want *persist.Message, mode bool) {
	t.Helper()
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
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
	if got.QoS != want.QoS {
		add("QoS %d, want %d", got.QoS, want.QoS)
	}
	if got.Retain != want.Retain {
		add("Retain %v, want %v", got.Retain, want.Retain)
	}
	if got.From != want.From {
		add("From %q, want %q", got.From, want.From)
	}
	if got.Username != want.Username {
		add("Username %q, want %q", got.Username, want.Username)
	}
	if got.PeerHost != want.PeerHost {
		add("PeerHost %q, want %q", got.PeerHost, want.PeerHost)
	}
	if got.Node != want.Node {
		add("Node %q, want %q", got.Node, want.Node)
	}
	if msg := timeDiff(got.Time, want.Time); msg != "" {
		add("Time %s", msg)
	}
	if msg := timeDiff(got.Expiry, want.Expiry); msg != "" {
		add("Expiry %s", msg)
	}
	if mode && got.Mode != want.Mode {
		add("Mode %v, want %v", got.Mode, want.Mode)
	}
	gp, wp := got.Props, want.Props
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
	if len(d) > 0 {
		t.Errorf("%s: message %s differs from what was stored:\n\t%s", what, fmtMsg(want), strings.Join(d, "\n\t"))
	}
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
