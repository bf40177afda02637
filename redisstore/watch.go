package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/topic"
)

// watchPing is how long a watch's connection may stay silent before the
// watch PINGs it; a connection that does not answer within another
// watchPing is replaced.
const watchPing = 2 * time.Second

// clientNotice is the JSON of a client's notice on the connected channel.
type clientNotice struct {
	Client  string `json:"client"`
	Node    string `json:"node,omitempty"`
	At      int64  `json:"at,omitempty"` // Client.OnlineAt in Unix milliseconds
	Offline bool   `json:"offline,omitempty"`
}

// Watch starts a watch on a pub/sub connection of its own (see the
// package doc, # Watch): it SUBSCRIBEs to the channel of client notices
// at once, then per watched filter to the filter's topic channel (a
// filter without wildcards) or PSUBSCRIBEs to a glob of it, so that Redis
// sends a node only the notices of topics it watches. It fails when the
// connection cannot be made; once made, a broken connection is made again
// (with every subscription) and fn hears an empty Notice then.
func (s *Store) Watch(ctx context.Context, fn func(persist.Notice)) (persist.Watch, error) {
	const op = "Watch"
	if err := s.kit.Enter(ctx, op); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, s.kit.Error(op, persist.ErrInvalid, "", errors.New("fn is nil"))
	}
	w := &watch{
		s:       s,
		fn:      fn,
		subs:    map[string]int{},
		waiters: map[string][]chan struct{}{},
		done:    make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.ps = s.c.Subscribe(w.ctx, s.k.connected)
	// The confirmation of the subscription: the connection works.
	if _, err := w.ps.ReceiveTimeout(ctx, 10*time.Second); err != nil {
		w.cancel()
		_ = w.ps.Close()
		return nil, s.kit.Fail(ctx, op, err)
	}
	if !s.watches.Add(s.kit, w) {
		w.cancel()
		_ = w.ps.Close()
		return nil, s.kit.Enter(ctx, op)
	}
	stop := context.AfterFunc(ctx, func() { _ = w.Close() })
	go func() {
		defer stop()
		w.loop()
	}()
	return w, nil
}

// watch is a persist.Watch on one pub/sub connection.
type watch struct {
	s      *Store
	fn     func(persist.Notice)
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop ends

	mu      sync.Mutex
	ps      *redis.PubSub
	closed  bool
	filters storekit.Filters           // the watched filters, for the topics of notices
	subs    map[string]int             // subscription (see subscription) → filters using it
	waiters map[string][]chan struct{} // subscriptions awaiting the server's confirmation
}

// subscription returns what a filter is watched with: "c" and its topic's
// channel for a filter without wildcards, else "p" and a glob pattern of
// the topic channels (see glob).
func (w *watch) subscription(filter string) (key, name string) {
	if !topic.HasWildcard(filter) {
		name = w.s.k.notifyChannel(filter)
		return "c" + name, name
	}
	name = globEscape(w.s.k.notify) + glob(filter)
	return "p" + name, name
}

// glob turns a filter into a Redis glob pattern matching every topic it
// matches (and some more, which topic.Match leaves out): literal levels
// escaped, '+' → '*', a trailing '/#' or '#' → '*' ('#' matches the parent
// level too).
func glob(filter string) string {
	var b strings.Builder
	for i, l := range strings.Split(filter, "/") {
		if l == "#" {
			b.WriteByte('*')
			break
		}
		if i > 0 {
			b.WriteByte('/')
		}
		if l == "+" {
			b.WriteByte('*')
		} else {
			b.WriteString(globEscape(l))
		}
	}
	return b.String()
}

// globEscape escapes the glob specials * ? [ ] \ of s.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// check returns the error that stops op with filters (see
// storekit.Kit.Watch), or ErrClosed after Close.
func (w *watch) check(ctx context.Context, op string, filters []string) error {
	if err := w.s.kit.Watch(ctx, op, filters); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.s.kit.Error(op, persist.ErrClosed, "", errors.New("watch is closed"))
	}
	return nil
}

// Add starts watching filters (a shared filter as its inner filter): a
// filter watched for the first time is subscribed to, and Add returns
// when Redis has confirmed it, so that a Publish made after Add returns is
// heard.
func (w *watch) Add(ctx context.Context, filters ...string) error {
	const op = "Watch.Add"
	if err := w.check(ctx, op, filters); err != nil {
		return err
	}
	var chans, pats []string
	var wait []chan struct{}
	w.mu.Lock()
	for _, f := range w.filters.Add(filters...) {
		key, name := w.subscription(f)
		w.subs[key]++
		if w.subs[key] > 1 {
			continue
		}
		ch := make(chan struct{})
		w.waiters[key] = append(w.waiters[key], ch)
		wait = append(wait, ch)
		if key[0] == 'c' {
			chans = append(chans, name)
		} else {
			pats = append(pats, name)
		}
	}
	ps := w.ps
	w.mu.Unlock()
	var err error
	if len(chans) > 0 {
		err = ps.Subscribe(ctx, chans...)
	}
	if len(pats) > 0 && err == nil {
		err = ps.PSubscribe(ctx, pats...)
	}
	for _, ch := range wait {
		if err != nil {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-w.done:
			err = w.s.kit.Error(op, persist.ErrClosed, "", errors.New("watch is closed"))
		}
	}
	if err != nil {
		_ = w.Remove(context.WithoutCancel(ctx), filters...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return w.s.kit.Fail(ctx, op, err)
	}
	return nil
}

// Remove stops watching filters, one count each; a filter whose count
// reaches zero is unsubscribed from.
func (w *watch) Remove(ctx context.Context, filters ...string) error {
	const op = "Watch.Remove"
	if err := w.check(ctx, op, nil); err != nil {
		return err
	}
	var chans, pats []string
	w.mu.Lock()
	for _, f := range w.filters.Remove(filters...) {
		key, name := w.subscription(f)
		if w.subs[key]--; w.subs[key] > 0 {
			continue
		}
		delete(w.subs, key)
		if key[0] == 'c' {
			chans = append(chans, name)
		} else {
			pats = append(pats, name)
		}
	}
	ps := w.ps
	w.mu.Unlock()
	// The PubSub forgets the names at once (a new connection does not
	// subscribe to them); an error only means that the connection broke.
	if len(chans) > 0 {
		_ = ps.Unsubscribe(ctx, chans...)
	}
	if len(pats) > 0 {
		_ = ps.PUnsubscribe(ctx, pats...)
	}
	return nil
}

// Close ends the watch and closes its connection; closing again returns
// nil.
func (w *watch) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	ps := w.ps
	w.mu.Unlock()
	w.cancel()
	_ = ps.Close()
	<-w.done
	w.s.watches.Drop(w)
	return nil
}

// pubsub returns the watch's current connection.
func (w *watch) pubsub() *redis.PubSub {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ps
}

// renew replaces the watch's connection by a new one with every
// subscription: the old one stopped answering.
func (w *watch) renew() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	old := w.ps
	chans := []string{w.s.k.connected}
	var pats []string
	for key := range w.subs {
		if key[0] == 'c' {
			chans = append(chans, key[1:])
		} else {
			pats = append(pats, key[1:])
		}
	}
	w.ps = w.s.c.Subscribe(w.ctx, chans...)
	if len(pats) > 0 {
		_ = w.ps.PSubscribe(w.ctx, pats...)
	}
	_ = old.Close()
}

// loop receives the watch's messages until it is closed: notices go to
// fn; after the connection broke and was made again, fn hears an empty
// Notice.
func (w *watch) loop() {
	defer close(w.done)
	broken, pinged := false, false
	backoff := 50 * time.Millisecond
	for {
		ps := w.pubsub()
		v, err := ps.ReceiveTimeout(w.ctx, watchPing)
		if w.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = true
					_ = ps.Ping(w.ctx)
					continue
				}
				// No answer to the PING: a dead connection.
				w.renew()
			}
			broken, pinged = true, false
			select {
			case <-w.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		pinged, backoff = false, 50*time.Millisecond
		if broken {
			broken = false
			w.fn(persist.Notice{})
		}
		switch m := v.(type) {
		case *redis.Subscription:
			w.confirmed(m)
		case *redis.Message:
			w.deliver(m)
		}
	}
}

// confirmed wakes the Adds waiting for a subscription.
func (w *watch) confirmed(m *redis.Subscription) {
	var key string
	switch m.Kind {
	case "subscribe":
		key = "c" + m.Channel
	case "psubscribe":
		key = "p" + m.Channel
	default:
		return
	}
	w.mu.Lock()
	chs := w.waiters[key]
	delete(w.waiters, key)
	w.mu.Unlock()
	for _, ch := range chs {
		close(ch)
	}
}

// deliver passes a notice to fn: a client's notice always, a topic's once
// when watched filters match the topic.
func (w *watch) deliver(m *redis.Message) {
	if m.Channel == w.s.k.connected {
		var c clientNotice
		if json.Unmarshal([]byte(m.Payload), &c) != nil || c.Client == "" {
			return
		}
		n := persist.Notice{Client: c.Client, Node: c.Node, Offline: c.Offline}
		if c.At != 0 {
			n.At = time.UnixMilli(c.At)
		}
		w.fn(n)
		return
	}
	name, ok := strings.CutPrefix(m.Channel, w.s.k.notify)
	if !ok || name == "" {
		return
	}
	// Redis sends a message per matching subscription: a topic watched
	// exactly is told by its channel's message, else by the message of
	// the least pattern of the filters that match it.
	exact, best := false, ""
	w.filters.Each(name, func(f string) bool {
		if !topic.HasWildcard(f) {
			exact = true
			return false
		}
		if _, p := w.subscription(f); best == "" || p < best {
			best = p
		}
		return true
	})
	if m.Pattern == "" && exact || m.Pattern != "" && !exact && m.Pattern == best {
		w.fn(persist.Notice{Topic: name, Node: m.Payload})
	}
}

// clientNoticeJSON is the payload of a client's notice.
func clientNoticeJSON(c *persist.Client) string {
	n := clientNotice{Client: c.ID, Node: c.Node, Offline: !c.Online}
	if c.Online && !c.OnlineAt.IsZero() {
		n.At = ms(c.OnlineAt)
	}
	b, _ := json.Marshal(n) // client IDs are valid UTF-8 (checked by the kit)
	return string(b)
}
