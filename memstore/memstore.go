package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/memfault"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// name is the store's name in errors.
const name = "memstore"

// Store keeps clients, subscriptions, messages, fanout acks, queue claims
// and retained messages in memory. It is safe for concurrent use.
type Store struct {
	kit  *storekit.Kit
	bugs memfault.Bugs // deliberate contract violations, for the suite's own tests only

	mu       sync.Mutex
	clients  map[string]persist.Client
	subs     map[string]map[string]sub    // client → filter → subscription
	msgs     map[string]*persist.Message  // ID → message
	acked    map[string]map[string]bool   // client → IDs of the fanout messages it acked
	skipTo   map[string]map[string]string // client → topic → ID: only for the old-cursor bugs (fault.go)
	claims   map[string]claim             // ID → queue claim
	groups   map[string]map[string]claim  // shared group → ID → claim (Claim)
	retained map[string]*persist.Message  // topic → message
}

// sub is a stored subscription and its fanout start: the subscription
// reads messages with greater IDs.
type sub struct {
	s     persist.Subscription
	start string
}

// claim is a queue message handed to client until its lease runs out.
type claim struct {
	client string
	until  time.Time
}

// Options are the options of NewWithOptions.
type Options struct {
	// Limits are the sizes the store keeps (see persist.Limits); the zero
	// value keeps what MQTT allows. Give a database's limits to test a
	// broker against what that database keeps.
	Limits persist.Limits
}

var (
	_ persist.Store              = (*Store)(nil)
	_ persist.ClientLookup       = (*Store)(nil)
	_ persist.SubscriptionLookup = (*Store)(nil)
	_ persist.RetainLookup       = (*Store)(nil)
	_ persist.Pinger             = (*Store)(nil)
	_ persist.Closer             = (*Store)(nil)
	_ persist.Limiter            = (*Store)(nil)
	_ persist.Claimer            = (*Store)(nil)
)

func init() {
	memfault.Of = func(st any) *memfault.Bugs {
		if s, ok := st.(*Store); ok {
			return &s.bugs
		}
		return nil
	}
}

// New returns an empty store that keeps what MQTT allows.
func New() *Store { return NewWithOptions(nil) }

// NewWithOptions returns an empty store; nil options are the defaults.
func NewWithOptions(opts *Options) *Store {
	var o Options
	if opts != nil {
		o = *opts
	}
	return &Store{
		kit:      storekit.New(name, o.Limits, nil),
		clients:  map[string]persist.Client{},
		subs:     map[string]map[string]sub{},
		msgs:     map[string]*persist.Message{},
		acked:    map[string]map[string]bool{},
		skipTo:   map[string]map[string]string{},
		claims:   map[string]claim{},
		groups:   map[string]map[string]claim{},
		retained: map[string]*persist.Message{},
	}
}

// Limits returns the sizes the store keeps.
func (s *Store) Limits() persist.Limits {
	if s.bug("declare less") {
		return persist.Limits{ClientID: 2000, Topic: 2000, Text: 2000, ID: 100, Payload: 2000}
	}
	return s.kit.Limits()
}

// Connected records a client's connection state (see persist.Store).
func (s *Store) Connected(ctx context.Context, c *persist.Client) error {
	if done, err := s.faultConnected(ctx, c); done {
		return err
	}
	if err := s.kit.Connected(s.ctx(ctx), c); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connect(c)
	return nil
}

// connect writes c, with s.mu held.
func (s *Store) connect(c *persist.Client) {
	id := s.key(c.ID)
	old, known := s.clients[id]
	// A disconnect from a node the client is not online on: it moved there
	// and this disconnect is late. An empty stored node is no node.
	moved := known && old.Online && old.Node != c.Node && (old.Node != "" || s.bug("node must match"))
	if !c.Online && moved && !s.bug("disconnect anywhere") {
		return
	}
	if s.bug("racy disconnect") && !c.Online {
		s.mu.Unlock() // let go between deciding and writing
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	n := *c
	if !s.bug("overwrite client") {
		if n.OnlineAt.IsZero() {
			n.OnlineAt = old.OnlineAt
		}
		if n.OfflineAt.IsZero() {
			n.OfflineAt = old.OfflineAt
		}
	}
	if s.bug("wall clock") {
		t := n.OnlineAt
		n.OnlineAt = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	}
	s.clients[id] = n
}

// Client returns the stored state of a client, or an error matching
// persist.ErrNotFound.
func (s *Store) Client(ctx context.Context, clientID string) (*persist.Client, error) {
	if done, err := s.faultLookup("Client", clientID); done {
		return nil, err
	}
	if err := s.kit.Lookup(s.ctx(ctx), "Client", clientID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[s.key(clientID)]
	if !ok {
		return nil, s.kit.Error("Client", persist.ErrNotFound, fmt.Sprintf("client %q", clientID), nil)
	}
	return &c, nil
}

// Subscribed adds, updates and removes a client's subscriptions (see
// persist.Store).
func (s *Store) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	subs, removed, done, err := s.faultSubscribed(ctx, clientID, subs, removed)
	if done {
		return err
	}
	last, err := s.kit.Subscribed(s.ctx(ctx), clientID, subs, removed)
	if err != nil {
		return err
	}
	if s.bug("subs first wins") {
		last = firstPerFilter(subs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribe(clientID, last, removed)
	return nil
}

// subscribe writes a Subscribed, with s.mu held.
func (s *Store) subscribe(clientID string, subs []persist.Subscription, removed []string) {
	id := s.key(clientID)
	m := s.subs[id]
	if m == nil {
		m = map[string]sub{}
		s.subs[id] = m
	}
	if !s.bug("remove keeps start") {
		for _, f := range removed {
			delete(m, f) // the start goes with it
		}
	}
	for _, x := range subs {
		start := storekit.Start(&x)
		if old, ok := m[x.Filter]; ok && !s.bug("resubscribe resets") {
			start = old.start // a repeated subscription keeps its start
		}
		x.History = false // a request, not state
		m[x.Filter] = sub{s: x, start: start}
	}
}

// Subscriptions returns a client's stored subscriptions, ordered by filter
// byte-wise.
func (s *Store) Subscriptions(ctx context.Context, clientID string) ([]persist.Subscription, error) {
	if done, err := s.faultLookup("Subscriptions", clientID); done {
		return nil, err
	}
	if err := s.kit.Lookup(s.ctx(ctx), "Subscriptions", clientID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []persist.Subscription
	for _, x := range s.subs[s.key(clientID)] {
		out = append(out, x.s)
	}
	storekit.SortSubscriptions(out)
	if s.bug("collation order") {
		slices.SortFunc(out, func(a, b persist.Subscription) int { return compareFold(a.Filter, b.Filter) })
	}
	return out, nil
}

// Publish stores a batch of messages (see persist.Store).
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	msgs, done, err := s.faultPublish(ctx, msgs)
	if done {
		return err
	}
	keep, err := s.kit.Publish(s.ctx(ctx), msgs) // checked, unexpired, each ID once
	if err != nil || len(keep) == 0 {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish(keep)
	return nil
}

// publish writes prepared messages, with s.mu held.
func (s *Store) publish(msgs []*persist.Message) {
	for _, m := range msgs {
		if _, ok := s.msgs[m.ID]; ok && !s.bug("duplicates") {
			continue // stored once
		}
		c := m.Clone()
		if s.bug("truncate payload") && len(c.Payload) > 1000 {
			c.Payload = c.Payload[:1000]
		}
		if s.bug("drop props") {
			c.Props = persist.Properties{}
		}
		if s.bug("duplicates") {
			c.ID = fmt.Sprintf("%s%d", m.ID, len(s.msgs))
		}
		s.msgs[c.ID] = c
	}
}

// Messages returns copies of every stored message (fanout and queue, not
// retained ones), in ID order: what a broker wrote, for a test to check.
// It reads also a closed store.
func (s *Store) Messages() []*persist.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*persist.Message, 0, len(s.msgs))
	for _, m := range s.msgs {
		out = append(out, m.Clone())
	}
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Acked records a client's acks (see persist.Store).
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	acks, done, err := s.faultAcked(ctx, clientID, acks)
	if done {
		return err
	}
	if err := s.kit.Acked(s.ctx(ctx), clientID, acks); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ack(clientID, acks)
	return nil
}

// ack writes acks, with s.mu held.
func (s *Store) ack(clientID string, acks []persist.Ack) {
	id := s.key(clientID)
	queue := make([]bool, len(acks))
	for i, a := range acks {
		m, stored := s.msgs[a.ID]
		if !stored || m.Mode != persist.Queue {
			continue
		}
		queue[i] = !s.bug("queue ack moves cursor")
		if c, ok := s.claims[a.ID]; ok && c.client == id || s.bug("anyone acks") {
			delete(s.msgs, a.ID) // consumed
			delete(s.claims, a.ID)
		}
	}
	set := s.acked[s.ackKey(id)]
	if set == nil || s.bug("acks forgotten") {
		set = map[string]bool{}
		s.acked[s.ackKey(id)] = set
	}
	for i, a := range acks {
		if _, stored := s.msgs[a.ID]; !stored && s.bug("ack needs message") {
			continue
		}
		if queue[i] {
			continue
		}
		// One message acked: none other, whatever its ID.
		set[a.ID] = true
		if s.bug("ack deletes fanout") {
			delete(s.msgs, a.ID)
		}
	}
	s.cumulativeAcks(id, acks, queue)
}

// FetchOffline returns and, for a queue fetch, claims the stored messages
// for a client (see persist.Store).
func (s *Store) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	opt, done, res, err := s.faultFetch(ctx, clientID, filter, opt)
	if done {
		return res, err
	}
	q, err := s.kit.Fetch(s.ctx(ctx), clientID, filter, opt)
	if err != nil {
		return nil, s.faultError("FetchOffline", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetch(q), nil
}

// fetch runs a prepared fetch, with s.mu held.
func (s *Store) fetch(q *storekit.Query) []*persist.Message {
	s.faultQuery(q)
	id := s.key(q.ClientID)
	queue := q.Fetch.Mode == persist.Queue
	start := ""
	if x, ok := s.subs[id][q.Filter]; ok && !queue && !s.bug("no start") {
		start = x.start
	}
	var cand []*persist.Message
	for mid, m := range s.msgs {
		if m.Expired(q.Now) && !s.bug("return expired") {
			delete(s.msgs, mid) // never returned again
			delete(s.claims, mid)
			for _, set := range s.acked {
				delete(set, mid)
			}
			continue
		}
		if m.Mode != q.Fetch.Mode && !s.bug("modes mixed") {
			continue
		}
		if !queue {
			if s.acked[s.ackKey(id)][m.ID] || m.ID <= start || s.skipped(id, m) {
				continue // acked, or before the subscription
			}
		} else if c, ok := s.claims[m.ID]; ok && q.Now.Before(c.until) && !s.bug("double claim") &&
			(c.client != id || s.bug("own claims skipped")) {
			continue // claimed by another whose lease still runs
		}
		cand = append(cand, m)
	}
	limit := q.Fetch.Limit
	if s.bug("claim past limit") && queue {
		q.Fetch.Limit = 0
	}
	out := s.finish(q, cand) // match, expiry, Since, ID order, Limit
	if queue {
		if s.bug("racy claim") {
			s.mu.Unlock() // let go between choosing and claiming
			time.Sleep(time.Millisecond)
			s.mu.Lock()
		}
		for _, m := range out {
			s.claim(m.ID, id, q)
		}
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
	}
	res := make([]*persist.Message, len(out))
	for i, m := range out {
		res[i] = m.Clone()
		if s.bug("nil payload") && len(res[i].Payload) == 0 {
			res[i].Payload = nil
		}
	}
	return res
}

// claim hands message id to client for the fetch's lease from now.
func (s *Store) claim(id, client string, q *storekit.Query) {
	lease := q.Fetch.Lease
	if s.bug("endless lease") {
		lease = time.Hour
	}
	if c, ok := s.claims[id]; ok && c.client == client && q.Now.Before(c.until) && s.bug("own claim keeps lease") {
		lease = c.until.Sub(q.Now)
	}
	s.claims[id] = claim{client: client, until: q.Now.Add(lease)}
}

// Claim leases a shared group's messages to one member at a time (see
// persist.Claimer).
func (s *Store) Claim(ctx context.Context, group, owner string, lease time.Duration, ids ...string) ([]string, error) {
	if err := s.kit.Claim(s.ctx(ctx), group, owner, ids); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	g := s.groups[group]
	if g == nil {
		g = map[string]claim{}
		s.groups[group] = g
	}
	var won []string
	for _, id := range ids {
		c, held := g[id]
		free := !held || !now.Before(c.until) || c.client == owner || s.bug("claims ignored")
		switch {
		case lease <= 0:
			if held && (c.client == owner || s.bug("claim release anyone")) {
				delete(g, id)
			}
		case free:
			g[id] = claim{client: owner, until: now.Add(lease)}
			won = append(won, id)
		}
	}
	for id, c := range g {
		if !now.Before(c.until) {
			delete(g, id) // ran out: as good as none
		}
	}
	return won, nil
}

// Retain sets, replaces or (with an empty payload) deletes the retained
// message of m.Topic.
func (s *Store) Retain(ctx context.Context, m *persist.Message) error {
	if done, err := s.faultRetain(ctx, m); done {
		return err
	}
	if err := s.kit.Retain(s.ctx(ctx), m); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retain(m)
	return nil
}

// retain writes a Retain, with s.mu held.
func (s *Store) retain(m *persist.Message) {
	key := s.key(m.Topic)
	switch _, ok := s.retained[key]; {
	case len(m.Payload) == 0 && !s.bug("retain keeps empty"):
		delete(s.retained, key)
	case m.Expired(time.Now()) && s.bug("retain skips expired"):
	case ok && s.bug("retain keeps first"):
	default:
		s.retained[key] = m.Clone()
	}
}

// Retained returns the retained messages whose topic matches filter,
// ordered by topic byte-wise.
func (s *Store) Retained(ctx context.Context, filter string) ([]*persist.Message, error) {
	if done, err := s.faultLookup("Retained", filter); done {
		return nil, err
	}
	q, err := s.kit.Retained(s.ctx(ctx), filter)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultQuery(q)
	all := make([]*persist.Message, 0, len(s.retained))
	for topic, m := range s.retained {
		if m.Expired(q.Now) && !s.bug("return expired") {
			delete(s.retained, topic)
			continue
		}
		all = append(all, m)
	}
	out := s.finishRetained(q, all)
	for i, m := range out {
		out[i] = m.Clone()
	}
	return out, nil
}

// Ping returns nil, unless ctx is done or the store closed.
func (s *Store) Ping(ctx context.Context) error { return s.kit.Ping(s.ctx(ctx)) }

// Close closes the store: every method then returns an error matching
// persist.ErrClosed. Closing again returns nil. What the store holds stays
// readable by Messages.
func (s *Store) Close() error {
	if !s.bug("open after close") {
		s.kit.Close()
	}
	return nil
}
