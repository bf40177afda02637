package persist

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mqttpersist/mqttpersist/topic"
)

// MaxString is the longest MQTT UTF-8 string (two length bytes): the
// longest client ID, topic, filter or text any store is asked to keep.
const MaxString = 65535

// Limits are the sizes a store can keep. A zero field means MQTT's own
// limit: MaxString bytes for strings, no limit (beyond MQTT's 256 MiB
// packet) for payloads. Stores declare theirs with Limiter; the checks of
// every verb's input (Limits.CheckPublish and the others) apply them.
type Limits struct {
	// ClientID is the longest client ID, in bytes.
	ClientID int
	// Topic is the longest topic name or filter, in bytes.
	Topic int
	// Text is the longest other string: From, Username, PeerHost, Node.
	Text int
	// ID is the longest message ID (IDs from NewID have IDLen bytes).
	ID int
	// Payload is the largest payload, in bytes.
	Payload int
}

// Limiter is implemented by stores that keep less than MQTT allows. A
// store that does not implement it is checked against the zero Limits
// (MQTT's own limits).
type Limiter interface {
	Limits() Limits
}

// LimitsOf returns the limits st declares, or the zero Limits.
func LimitsOf(st Store) Limits {
	if l, ok := st.(Limiter); ok {
		return l.Limits()
	}
	return Limits{}
}

// Min returns the stricter of l and o, field by field: what both stores
// keep.
func (l Limits) Min(o Limits) Limits {
	m := func(a, b int) int {
		switch {
		case a == 0:
			return b
		case b == 0:
			return a
		}
		return min(a, b)
	}
	return Limits{ClientID: m(l.ClientID, o.ClientID), Topic: m(l.Topic, o.Topic), Text: m(l.Text, o.Text),
		ID: m(l.ID, o.ID), Payload: m(l.Payload, o.Payload)}
}

func orMax(n int) int {
	if n <= 0 || n > MaxString {
		return MaxString
	}
	return n
}

// covers reports whether input within l is within o too: every field of
// l is at most o's (zero meaning MQTT's limit, or no limit for Payload).
func (l Limits) covers(o Limits) bool {
	pay := func(n int) int {
		if n <= 0 {
			return int(^uint(0) >> 1)
		}
		return n
	}
	return orMax(l.ClientID) <= orMax(o.ClientID) && orMax(l.Topic) <= orMax(o.Topic) &&
		orMax(l.Text) <= orMax(o.Text) && orMax(l.ID) <= orMax(o.ID) && pay(l.Payload) <= pay(o.Payload)
}

// checkedKey marks a context whose call's input was checked; its value is
// the Limits it was checked against.
type checkedKey struct{}

// withChecked returns ctx marked as carrying input that a Router or
// Pipeline has checked against *l (its own Limits, which do not change: a
// pointer in the context costs no allocation of a copy).
func withChecked(ctx context.Context, l *Limits) context.Context {
	if CheckedFor(ctx, *l) {
		return ctx
	}
	return context.WithValue(ctx, checkedKey{}, l)
}

// CheckedFor reports whether ctx comes from a Router or Pipeline that has
// already checked the input of the call it makes against limits at least
// as strict as l, so that a store keeping l need not check it again
// (storekit skips its checks then). Only this package marks a context; a
// store wrapped in another that does not pass on its Limits is checked
// again, by its own limits.
func CheckedFor(ctx context.Context, l Limits) bool {
	c, ok := ctx.Value(checkedKey{}).(*Limits)
	return ok && c.covers(l)
}

// invalid returns an error matching ErrInvalid about what (such as
// `client "c"`, or "" when the cause says it all) for cause.
func invalid(what string, cause error) error {
	return &Error{Kind: ErrInvalid, What: what, Err: cause}
}

// checkText says what is wrong with a string a store keeps: it must be
// UTF-8 without U+0000, as MQTT strings are [MQTT-1.5.4-1] [MQTT-1.5.4-2],
// and at most max bytes.
func checkText(what, v string, max int) error {
	if len(v) > orMax(max) {
		return fmt.Errorf("%s is %d bytes, more than %d", what, len(v), orMax(max))
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, v)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%s %q contains U+0000", what, v)
	}
	return nil
}

func (l Limits) clientID(id string) error {
	if id == "" {
		return fmt.Errorf("client ID is empty")
	}
	return checkText("client ID", id, l.ClientID)
}

// topicError is a *topic.Error whose text leaves out the package name,
// so that a store's message names one package; it unwraps to the
// *topic.Error.
type topicError struct{ err error }

func (e topicError) Error() string { return strings.TrimPrefix(e.err.Error(), "topic: ") }
func (e topicError) Unwrap() error { return e.err }

func topicErr(err error) error {
	if err == nil {
		return nil
	}
	return topicError{err}
}

func (l Limits) name(name string) error {
	if len(name) > orMax(l.Topic) {
		return fmt.Errorf("topic name is %d bytes, more than %d", len(name), orMax(l.Topic))
	}
	return topicErr(topic.ValidateName(name))
}

func (l Limits) filter(filter string) error {
	if len(filter) > orMax(l.Topic) {
		return fmt.Errorf("topic filter is %d bytes, more than %d", len(filter), orMax(l.Topic))
	}
	return topicErr(topic.ValidateFilter(filter))
}

func (l Limits) msgID(id string) error {
	if id == "" {
		return fmt.Errorf("message ID is empty")
	}
	return checkText("message ID", id, l.ID)
}

// message says what is wrong with a message, or nil; needID requires an ID.
func (l Limits) message(m *Message, needID bool) error {
	if m == nil {
		return fmt.Errorf("message is nil")
	}
	if err := l.name(m.Topic); err != nil {
		return err
	}
	if needID || m.ID != "" {
		if err := l.msgID(m.ID); err != nil {
			return err
		}
	}
	switch {
	case m.QoS > 2:
		return fmt.Errorf("QoS is %d (want 0, 1 or 2)", m.QoS)
	case m.Mode != Fanout && m.Mode != Queue:
		return fmt.Errorf("mode is %v", m.Mode)
	case l.Payload > 0 && len(m.Payload) > l.Payload:
		return fmt.Errorf("payload is %d bytes, more than %d", len(m.Payload), l.Payload)
	}
	for _, f := range [...]struct{ what, v string }{
		{"From", m.From}, {"Username", m.Username}, {"PeerHost", m.PeerHost}, {"Node", m.Node},
	} {
		if err := checkText(f.what, f.v, l.Text); err != nil {
			return err
		}
	}
	p := &m.Props
	if p.PayloadFormat != nil && *p.PayloadFormat > 1 {
		return fmt.Errorf("payload format indicator is %d (want 0 or 1)", *p.PayloadFormat)
	}
	for _, f := range [...]struct{ what, v string }{{"content type", p.ContentType}, {"response topic", p.ResponseTopic}} {
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%s %q is not valid UTF-8", f.what, f.v)
		}
	}
	for i, u := range p.User {
		if !utf8.ValidString(u.Key) || !utf8.ValidString(u.Value) {
			return fmt.Errorf("user property %d is not valid UTF-8", i)
		}
	}
	return nil
}

// subscription says what is wrong with a subscription, or nil.
func (l Limits) subscription(sub *Subscription) error {
	if err := l.filter(sub.Filter); err != nil {
		return err
	}
	switch {
	case sub.QoS > 2:
		return fmt.Errorf("QoS is %d (want 0, 1 or 2)", sub.QoS)
	case sub.RetainHandling > 2:
		return fmt.Errorf("retain handling is %d (want 0, 1 or 2)", sub.RetainHandling)
	case sub.Identifier < 0 || sub.Identifier > 268435455:
		return fmt.Errorf("subscription identifier is %d (want 0 to 268435455)", sub.Identifier)
	}
	if sub.Start != "" {
		return checkText("start", sub.Start, l.ID)
	}
	return nil
}

// CheckPublish checks a Publish batch: every message non-nil, with a valid
// topic name [MQTT-3.3.2-2] [MQTT-4.7.3-1], an ID, QoS 0 to 2, a known Mode,
// strings of valid UTF-8 without U+0000 within l, and a payload within l.
// The error matches ErrInvalid and names the first bad message by index
// and topic.
func (l Limits) CheckPublish(msgs []*Message) error {
	for i, m := range msgs {
		if err := l.message(m, true); err != nil {
			return invalid(fmt.Sprintf("message %d%s", i, topicOf(m)), err)
		}
	}
	return nil
}

// CheckRetain checks the message of a Retain as CheckPublish does, but
// without requiring an ID.
func (l Limits) CheckRetain(m *Message) error {
	if err := l.message(m, false); err != nil {
		return invalid(strings.TrimPrefix(topicOf(m), " "), err)
	}
	return nil
}

func topicOf(m *Message) string {
	if m == nil {
		return ""
	}
	return fmt.Sprintf(" (topic %q)", m.Topic)
}

// CheckClient checks the client of a Connected: non-nil, with a client ID
// and strings within l.
func (l Limits) CheckClient(c *Client) error {
	if c == nil {
		return invalid("", fmt.Errorf("client is nil"))
	}
	if err := l.clientID(c.ID); err != nil {
		return invalid("", err)
	}
	for _, f := range [...]struct{ what, v string }{{"Username", c.Username}, {"PeerHost", c.PeerHost}, {"Node", c.Node}} {
		if err := checkText(f.what, f.v, l.Text); err != nil {
			return invalid(fmt.Sprintf("client %q", c.ID), err)
		}
	}
	return nil
}

// CheckClientID checks a client ID given to a verb or lookup: not empty,
// valid UTF-8 without U+0000, within l.
func (l Limits) CheckClientID(id string) error {
	if err := l.clientID(id); err != nil {
		return invalid("", err)
	}
	return nil
}

// CheckSubscribed checks the input of a Subscribed: the client ID, every
// subscription (valid filter [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.8.2-1],
// QoS, retain handling and identifier in range) and every removed filter.
func (l Limits) CheckSubscribed(clientID string, subs []Subscription, removed []string) error {
	if err := l.CheckClientID(clientID); err != nil {
		return err
	}
	for i := range subs {
		if err := l.subscription(&subs[i]); err != nil {
			return invalid(fmt.Sprintf("client %q subscription %d (filter %q)", clientID, i, subs[i].Filter), err)
		}
	}
	for i, f := range removed {
		if err := l.filter(f); err != nil {
			return invalid(fmt.Sprintf("client %q removed filter %d (%q)", clientID, i, f), err)
		}
	}
	return nil
}

// CheckAcked checks the input of an Acked: the client ID and every ack (an
// ID and a valid topic name).
func (l Limits) CheckAcked(clientID string, acks []Ack) error {
	if err := l.CheckClientID(clientID); err != nil {
		return err
	}
	for i, a := range acks {
		err := l.msgID(a.ID)
		if err == nil {
			err = l.name(a.Topic)
		}
		if err != nil {
			return invalid(fmt.Sprintf("client %q ack %d (topic %q)", clientID, i, a.Topic), err)
		}
	}
	return nil
}

// CheckFetch checks the input of a FetchOffline: the client ID, the filter
// and the options (a known Mode; Limit, Since and Lease not negative).
func (l Limits) CheckFetch(clientID, filter string, opt Fetch) error {
	if err := l.CheckClientID(clientID); err != nil {
		return err
	}
	if err := l.filter(filter); err != nil {
		return invalid(fmt.Sprintf("client %q", clientID), err)
	}
	switch {
	case opt.Mode != Fanout && opt.Mode != Queue:
		return invalid(fmt.Sprintf("client %q filter %q", clientID, filter), fmt.Errorf("Mode is %v", opt.Mode))
	case opt.Limit < 0:
		return invalid(fmt.Sprintf("client %q filter %q", clientID, filter), fmt.Errorf("Limit is %d, less than 0", opt.Limit))
	case opt.Since < 0:
		return invalid(fmt.Sprintf("client %q filter %q", clientID, filter), fmt.Errorf("Since is %v, less than 0", opt.Since))
	case opt.Lease < 0:
		return invalid(fmt.Sprintf("client %q filter %q", clientID, filter), fmt.Errorf("Lease is %v, less than 0", opt.Lease))
	}
	return nil
}

// CheckFilter checks a filter given to a lookup (such as Retained).
func (l Limits) CheckFilter(filter string) error {
	if err := l.filter(filter); err != nil {
		return invalid("", err)
	}
	return nil
}

// CheckClaim checks the input of a Claim: the group (a shared filter, kept
// as a client ID), the owner (a client ID) and every message ID.
func (l Limits) CheckClaim(group, owner string, ids []string) error {
	if _, _, ok := topic.Shared(group); !ok {
		return invalid("", fmt.Errorf("group %q is not a shared filter ($share/<group>/<filter>)", group))
	}
	if err := l.filter(group); err != nil {
		return invalid("group", err)
	}
	if err := l.clientID(group); err != nil {
		return invalid("group", err)
	}
	if err := l.CheckClientID(owner); err != nil {
		return err
	}
	for i, id := range ids {
		if err := l.msgID(id); err != nil {
			return invalid(fmt.Sprintf("group %q ID %d", group, i), err)
		}
	}
	return nil
}
