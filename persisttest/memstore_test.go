package persisttest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// memStore is a reference in-memory store: the smallest thing that follows
// the persist.Store contract, used to check the suite itself. bugs switch
// on deliberate contract violations, so the suite's cases are seen to fail.
type memStore struct {
	bugs map[string]bool

	mu       sync.Mutex
	closed   bool
	clients  map[string]persist.Client
	subs     map[string]map[string]sub    // client → filter → sub
	msgs     map[string]*persist.Message  // ID → message
	cursors  map[string]map[string]string // client → topic → ID
	claims   map[string]claim             // ID → claim
	retained map[string]*persist.Message  // topic → message
}

type sub struct {
	s     persist.Subscription
	start string // fanout start: messages with a greater ID
}

type claim struct {
	client string
	until  time.Time
}

func newMemStore(bugs ...string) *memStore {
	b := map[string]bool{}
	for _, x := range bugs {
		b[x] = true
	}
	return &memStore{
		bugs:     b,
		clients:  map[string]persist.Client{},
		subs:     map[string]map[string]sub{},
		msgs:     map[string]*persist.Message{},
		cursors:  map[string]map[string]string{},
		claims:   map[string]claim{},
		retained: map[string]*persist.Message{},
	}
}

var (
	_ persist.Store              = (*memStore)(nil)
	_ persist.ClientLookup       = (*memStore)(nil)
	_ persist.SubscriptionLookup = (*memStore)(nil)
	_ persist.RetainLookup       = (*memStore)(nil)
	_ persist.Pinger             = (*memStore)(nil)
	_ persist.Closer             = (*memStore)(nil)
)

// lock checks ctx and the closed state and locks the store.
func (s *memStore) lock(ctx context.Context, op string) (func(), error) {
	if err := ctx.Err(); err != nil && !s.bugs["ignore ctx"] {
		return nil, err
	}
	s.mu.Lock()
	if s.closed && !s.bugs["open after close"] {
		s.mu.Unlock()
		return nil, persist.Wrap("memstore", op, persist.ErrClosed, persist.ErrClosed, false)
	}
	return s.mu.Unlock, nil
}

func invalid(op string, err error) error {
	return persist.Wrap("memstore", op, persist.ErrInvalid, err, false)
}

func (s *memStore) norm(x string) string {
	if s.bugs["case-insensitive"] {
		return strings.ToLower(x)
	}
	if s.bugs["pad space"] {
		return strings.TrimRight(x, " ")
	}
	return x
}

func (s *memStore) match(filter, name string) bool {
	if s.bugs["hash matches dollar"] && filter == "#" {
		return true
	}
	if s.bugs["like"] {
		if f, ok := strings.CutSuffix(filter, "/#"); ok {
			return name == f || strings.HasPrefix(name, f)
		}
	}
	return topic.Match(filter, name)
}

func (s *memStore) Connected(ctx context.Context, c *persist.Client) error {
	unlock, err := s.lock(ctx, "Connected")
	if err != nil {
		return err
	}
	defer unlock()
	id := s.norm(c.ID)
	old, known := s.clients[id]
	// A disconnect from a node the client is not online on: it moved.
	moved := known && old.Online && old.Node != c.Node && (old.Node != "" || s.bugs["node must match"])
	if !c.Online && moved && !s.bugs["disconnect anywhere"] {
		return nil
	}
	if s.bugs["racy disconnect"] && !c.Online {
		// Let go of the lock between deciding and writing.
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	n := *c
	if n.OnlineAt.IsZero() && !s.bugs["overwrite client"] {
		n.OnlineAt = old.OnlineAt
	}
	if n.OfflineAt.IsZero() && !s.bugs["overwrite client"] {
		n.OfflineAt = old.OfflineAt
	}
	if s.bugs["wall clock"] {
		n.OnlineAt = time.Date(n.OnlineAt.Year(), n.OnlineAt.Month(), n.OnlineAt.Day(), n.OnlineAt.Hour(), n.OnlineAt.Minute(), n.OnlineAt.Second(), 0, time.UTC)
	}
	s.clients[id] = n
	return nil
}

func (s *memStore) Client(ctx context.Context, id string) (*persist.Client, error) {
	unlock, err := s.lock(ctx, "Client")
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, ok := s.clients[s.norm(id)]
	if !ok {
		return nil, persist.Wrap("memstore", "Client", persist.ErrNotFound, fmt.Errorf("client %q", id), false)
	}
	return &c, nil
}

func (s *memStore) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	unlock, err := s.lock(ctx, "Subscribed")
	if err != nil {
		return err
	}
	defer unlock()
	for _, x := range subs {
		if err := topic.ValidateFilter(x.Filter); err != nil {
			return invalid("Subscribed", err)
		}
	}
	id := s.norm(clientID)
	m := s.subs[id]
	if m == nil {
		m = map[string]sub{}
		s.subs[id] = m
	}
	for _, f := range removed {
		if !s.bugs["remove keeps start"] {
			delete(m, f)
		}
	}
	seen := map[string]bool{}
	for _, x := range subs {
		if seen[x.Filter] && s.bugs["subs first wins"] {
			continue
		}
		seen[x.Filter] = true
		start := persist.NewID()
		if x.History {
			start = ""
		}
		if old, ok := m[x.Filter]; ok && !s.bugs["resubscribe resets"] {
			start = old.start
		}
		x.History = false
		m[x.Filter] = sub{s: x, start: start}
	}
	return nil
}

func (s *memStore) Subscriptions(ctx context.Context, clientID string) ([]persist.Subscription, error) {
	unlock, err := s.lock(ctx, "Subscriptions")
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []persist.Subscription
	for _, x := range s.subs[s.norm(clientID)] {
		out = append(out, x.s)
	}
	slices.SortFunc(out, func(a, b persist.Subscription) int {
		if s.bugs["collation order"] {
			return strings.Compare(strings.ToLower(a.Filter), strings.ToLower(b.Filter))
		}
		return strings.Compare(a.Filter, b.Filter)
	})
	return out, nil
}

func (s *memStore) Publish(ctx context.Context, msgs ...*persist.Message) error {
	unlock, err := s.lock(ctx, "Publish")
	if err != nil {
		return err
	}
	defer unlock()
	if !s.bugs["partial batch"] {
		for _, m := range msgs {
			if err := topic.ValidateName(m.Topic); err != nil {
				return invalid("Publish", err)
			}
		}
	}
	if s.bugs["packet limit"] {
		total := 0
		for _, m := range msgs {
			total += len(m.Payload)
		}
		if total > 16<<20 {
			return fmt.Errorf("memstore: packet of %d bytes is too large", total)
		}
	}
	now := time.Now()
	for _, m := range msgs {
		if err := topic.ValidateName(m.Topic); err != nil {
			return invalid("Publish", err)
		}
		if m.Expired(now) && !s.bugs["store expired"] {
			continue
		}
		if _, ok := s.msgs[m.ID]; ok && !s.bugs["duplicates"] {
			continue
		}
		c := m.Clone()
		if s.bugs["truncate payload"] && len(c.Payload) > 1000 {
			c.Payload = c.Payload[:1000]
		}
		if s.bugs["drop props"] {
			c.Props = persist.Properties{}
		}
		if s.bugs["duplicates"] {
			c.ID = fmt.Sprintf("%s%d", m.ID, len(s.msgs))
		}
		s.msgs[c.ID] = c
	}
	return nil
}

func (s *memStore) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	unlock, err := s.lock(ctx, "Acked")
	if err != nil {
		return err
	}
	defer unlock()
	id := s.norm(clientID)
	for _, a := range acks {
		if m, ok := s.msgs[a.ID]; ok && m.Mode == persist.Queue {
			if c, ok := s.claims[a.ID]; (ok && c.client == id) || s.bugs["anyone acks"] {
				delete(s.msgs, a.ID)
				delete(s.claims, a.ID)
			}
			if !s.bugs["queue ack moves cursor"] {
				continue
			}
		}
		if _, ok := s.msgs[a.ID]; !ok && s.bugs["ack needs message"] {
			continue
		}
		cur := s.cursors[id]
		if cur == nil {
			cur = map[string]string{}
			s.cursors[id] = cur
		}
		topicKey := a.Topic
		if s.bugs["cursor per client"] {
			topicKey = ""
		}
		if a.ID > cur[topicKey] || s.bugs["cursor moves back"] {
			cur[topicKey] = a.ID
		}
		if s.bugs["ack deletes fanout"] {
			delete(s.msgs, a.ID)
		}
	}
	return nil
}

func (s *memStore) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	unlock, err := s.lock(ctx, "FetchOffline")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, invalid("FetchOffline", err)
	}
	id := s.norm(clientID)
	now := time.Now()
	start := ""
	if x, ok := s.subs[id][filter]; ok && opt.Mode == persist.Fanout && !s.bugs["no start"] {
		start = x.start
	}
	var out []*persist.Message
	for _, m := range s.msgs {
		if (m.Mode != opt.Mode && !s.bugs["modes mixed"]) || !s.match(filter, m.Topic) {
			continue
		}
		if m.Expired(now) && !s.bugs["return expired"] {
			continue
		}
		if opt.Since > 0 && m.Time.Before(now.Add(-opt.Since)) && !s.bugs["ignore since"] {
			continue
		}
		if opt.Mode == persist.Fanout {
			key := m.Topic
			if s.bugs["cursor per client"] {
				key = ""
			}
			if m.ID <= s.cursors[id][key] || m.ID <= start {
				continue
			}
		} else if c, ok := s.claims[m.ID]; ok && now.Before(c.until) && !s.bugs["double claim"] &&
			(c.client != id || s.bugs["own claims skipped"]) {
			continue // claimed by another whose lease still runs
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	if opt.Limit > 0 && len(out) > opt.Limit {
		if s.bugs["claim past limit"] && opt.Mode == persist.Queue {
			for _, m := range out {
				s.claims[m.ID] = claim{client: id, until: now.Add(opt.LeaseOrDefault())}
			}
		}
		out = out[:opt.Limit]
	}
	if s.bugs["racy claim"] && opt.Mode == persist.Queue {
		// Let go of the lock between choosing and claiming.
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	res := make([]*persist.Message, len(out))
	for i, m := range out {
		if opt.Mode == persist.Queue {
			lease := opt.LeaseOrDefault()
			if s.bugs["endless lease"] {
				lease = time.Hour
			}
			if c, ok := s.claims[m.ID]; ok && c.client == id && now.Before(c.until) && s.bugs["own claim keeps lease"] {
				lease = c.until.Sub(now)
			}
			s.claims[m.ID] = claim{client: id, until: now.Add(lease)}
		}
		res[i] = m.Clone()
		if s.bugs["nil payload"] && len(res[i].Payload) == 0 {
			res[i].Payload = nil
		}
	}
	return res, nil
}

func (s *memStore) Retain(ctx context.Context, m *persist.Message) error {
	unlock, err := s.lock(ctx, "Retain")
	if err != nil {
		return err
	}
	defer unlock()
	if err := topic.ValidateName(m.Topic); err != nil {
		return invalid("Retain", err)
	}
	if len(m.Payload) == 0 && !s.bugs["retain keeps empty"] {
		delete(s.retained, s.norm(m.Topic))
		return nil
	}
	if m.Expired(time.Now()) && s.bugs["retain skips expired"] {
		return nil
	}
	if _, ok := s.retained[s.norm(m.Topic)]; ok && s.bugs["retain keeps first"] {
		return nil
	}
	s.retained[s.norm(m.Topic)] = m.Clone()
	return nil
}

func (s *memStore) Retained(ctx context.Context, filter string) ([]*persist.Message, error) {
	unlock, err := s.lock(ctx, "Retained")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, invalid("Retained", err)
	}
	now := time.Now()
	var out []*persist.Message
	for _, m := range s.retained {
		if s.match(filter, m.Topic) && (!m.Expired(now) || s.bugs["return expired"]) {
			out = append(out, m.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *persist.Message) int {
		if s.bugs["collation order"] {
			return strings.Compare(strings.ToLower(a.Topic), strings.ToLower(b.Topic))
		}
		return strings.Compare(a.Topic, b.Topic)
	})
	return out, nil
}

func (s *memStore) Ping(ctx context.Context) error {
	unlock, err := s.lock(ctx, "Ping")
	if err != nil {
		return err
	}
	unlock()
	return nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
