// Package mqtttest is a real MQTT 5 client (github.com/eclipse/paho.golang)
// for tests: it connects to a broker, records every message it receives,
// and compares what arrived with what was expected.
package mqtttest

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// Client is a paho (MQTT 5) client that records what it receives and
// acknowledges it (after Options.Handler, if any).
type Client struct {
	t    testing.TB
	ID   string
	PC   *paho.Client
	mu   sync.Mutex
	got  []*paho.Publish
	more chan struct{}
	acks *AckSession
	// Connack is the broker's answer to the connect.
	Connack *paho.Connack
}

// Options of a connect.
type Options struct {
	// Clean asks for a clean start (no session kept from before).
	Clean bool
	// Expiry is the session expiry interval in seconds; 0 ends the
	// session with the connection.
	Expiry uint32
	// ReceiveMax is the client's Receive Maximum; 0 leaves it unset.
	ReceiveMax uint16
	// Handler, when set, runs for each message before it is acknowledged.
	Handler func(*paho.Publish)
}

// Dial connects client id to the broker at addr, failing the test if it
// cannot; the client disconnects at cleanup.
func Dial(t testing.TB, addr, id string, o Options) *Client {
	t.Helper()
	c, err := DialErr(t, addr, id, o)
	if err != nil {
		t.Fatalf("connect %q to %s: %v", id, addr, err)
	}
	return c
}

// DialErr is Dial returning the error.
func DialErr(t testing.TB, addr, id string, o Options) (*Client, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Client{t: t, ID: id, more: make(chan struct{}, 1), acks: NewAckSession()}
	c.PC = paho.NewClient(paho.ClientConfig{
		Conn:    nc,
		Session: c.acks,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			if o.Handler != nil {
				o.Handler(r.Packet)
			}
			if r.Packet.QoS > 0 {
				c.acks.Expect()
			}
			c.mu.Lock()
			c.got = append(c.got, r.Packet)
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
			return true, nil
		}},
	})
	cp := &paho.Connect{ClientID: id, CleanStart: o.Clean, KeepAlive: 30, Properties: &paho.ConnectProperties{}}
	if o.Expiry > 0 {
		cp.Properties.SessionExpiryInterval = &o.Expiry
	}
	if o.ReceiveMax > 0 {
		cp.Properties.ReceiveMaximum = &o.ReceiveMax
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.PC.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.Connack = ca
	t.Cleanup(c.Disconnect)
	return c, nil
}

// Disconnect sends DISCONNECT, once the client has sent the PUBACK (or
// PUBREC) of every QoS 1 or 2 message it received (paho sends it after
// the message's handlers return, so a test that saw the message may be
// ahead of it), and waits (up to 5s) for the connection to end.
func (c *Client) Disconnect() {
	select {
	case <-c.PC.Done():
		_ = c.acks.Close()
		return
	default:
	}
	c.Flush(5 * time.Second)
	_ = c.PC.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.PC.Done():
		_ = c.acks.Close() // the client's own session: paho closes only one it made
	case <-time.After(5 * time.Second):
	}
}

// Flush waits until the client has written the PUBACK (or PUBREC) of
// every QoS 1 or 2 message it received, at most timeout; it reports
// whether it did.
func (c *Client) Flush(timeout time.Duration) bool { return c.acks.Flush(c.PC.Done(), timeout) }

// AckSession is paho's in-memory session (ClientConfig.Session), counting
// the acknowledgments (PUBACK, PUBREC) it has written against the QoS 1
// and 2 messages its client's handler saw (Expect), so that a test can
// wait until they are on the wire before it disconnects (paho acks after
// the handlers return). Wrapping the connection instead would split paho's
// packets into several writes, which its goroutines interleave. paho does
// not close a session it did not make: close it when the client is done.
type AckSession struct {
	session.SessionManager
	mu       sync.Mutex
	acks     int
	expected int
}

// NewAckSession returns an AckSession over a new in-memory session.
func NewAckSession() *AckSession { return &AckSession{SessionManager: state.NewInMemory()} }

// Expect counts a QoS 1 or 2 message the client received (call it from
// the handler).
func (a *AckSession) Expect() {
	a.mu.Lock()
	a.expected++
	a.mu.Unlock()
}

// Ack writes the acknowledgment of pb (see state.State.Ack) and counts it.
func (a *AckSession) Ack(pb *packets.Publish) error {
	err := a.SessionManager.Ack(pb)
	if pb.QoS > 0 {
		a.mu.Lock()
		a.acks++
		a.mu.Unlock()
	}
	return err
}

// Flush waits until every expected acknowledgment is written, done is
// closed (the connection ended), or timeout; it reports whether they were.
func (a *AckSession) Flush(done <-chan struct{}, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		a.mu.Lock()
		ok := a.acks >= a.expected
		a.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Subscribe subscribes to filter with qos, failing the test on a refusal.
func (c *Client) Subscribe(filter string, qos byte) {
	c.t.Helper()
	c.SubscribeOpts(paho.SubscribeOptions{Topic: filter, QoS: qos})
}

// SubscribeOpts subscribes with full MQTT 5 options.
func (c *Client) SubscribeOpts(opts ...paho.SubscribeOptions) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := c.PC.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		c.t.Fatalf("%s: subscribe: %v", c.ID, err)
	}
	for i, rc := range sa.Reasons {
		if rc >= 0x80 {
			c.t.Fatalf("%s: subscribe %q: reason %#x", c.ID, opts[i].Topic, rc)
		}
	}
}

// Unsubscribe unsubscribes from filters.
func (c *Client) Unsubscribe(filters ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.PC.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters}); err != nil {
		c.t.Fatalf("%s: unsubscribe: %v", c.ID, err)
	}
}

// Publish publishes and, for QoS 1 and 2, waits for the broker's ack.
func (c *Client) Publish(topic string, payload []byte, qos byte, retain bool) {
	c.t.Helper()
	c.PublishMsg(&paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
}

// PublishMsg publishes p and, for QoS 1 and 2, waits for the broker's ack.
func (c *Client) PublishMsg(p *paho.Publish) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.PC.Publish(ctx, p); err != nil {
		c.t.Fatalf("%s: publish %q: %v", c.ID, p.Topic, err)
	}
}

// Received returns a copy of what the client got so far.
func (c *Client) Received() []*paho.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*paho.Publish(nil), c.got...)
}

// WaitFor waits until the client got n messages (failing the test when
// timeout runs out first), then stays quiet for quiet to catch anything
// beyond n, and returns all it got.
func (c *Client) WaitFor(n int, timeout, quiet time.Duration) []*paho.Publish {
	c.t.Helper()
	deadline := time.After(timeout)
	for len(c.Received()) < n {
		select {
		case <-c.more:
		case <-deadline:
			got := c.Received()
			c.t.Fatalf("%s: got %d messages, want %d: %s", c.ID, len(got), n, Summary(got))
		}
	}
	time.Sleep(quiet)
	return c.Received()
}

// Summary describes messages as topic=payload pairs (the first 20).
func Summary(ps []*paho.Publish) string {
	var b strings.Builder
	for i, p := range ps {
		if i == 20 {
			fmt.Fprintf(&b, " …(%d more)", len(ps)-20)
			break
		}
		fmt.Fprintf(&b, " %s=%q", p.Topic, p.Payload)
	}
	return b.String()
}

// Payloads returns the payloads as strings.
func Payloads(ps []*paho.Publish) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Payload)
	}
	return out
}

// Numbered returns "prefix0" … "prefix<n-1>".
func Numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// Sorted returns a sorted copy of s.
func Sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// Diff describes how got differs from want, or returns "" when they are
// equal (same elements in the same order).
func Diff(got, want []string) string {
	if len(got) == len(want) {
		same := true
		for i := range got {
			if got[i] != want[i] {
				same = false
				break
			}
		}
		if same {
			return ""
		}
	}
	cnt := map[string]int{}
	for _, w := range want {
		cnt[w]++
	}
	var extra, missing []string
	for _, g := range got {
		if cnt[g] == 0 {
			extra = append(extra, g)
			continue
		}
		cnt[g]--
	}
	for _, w := range want {
		if cnt[w] > 0 {
			missing = append(missing, w)
			cnt[w]--
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		for i := range got {
			if got[i] != want[i] {
				return fmt.Sprintf("the same %d messages, out of order from #%d: got %v, want %v", len(got), i, head(got[i:]), head(want[i:]))
			}
		}
	}
	return fmt.Sprintf("got %d, want %d; missing %d %v; extra or repeated %d %v",
		len(got), len(want), len(missing), head(missing), len(extra), head(extra))
}

func head(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}
