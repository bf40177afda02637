package persist

import (
	"context"
	"errors"
	"time"

	"github.com/mqttpersist/mqttpersist/topic"
)

// fillAll gives the messages of a batch that have none an ID and a Time
// (a nil message is left to the checks).
func fillAll(msgs []*Message) {
	now := time.Now()
	for _, m := range msgs {
		if m != nil {
			fill(m, now)
		}
	}
}

// fill gives m an ID and a Time when it has none.
func fill(m *Message, now time.Time) {
	if m.Time.IsZero() {
		m.Time = now
	}
	if m.ID == "" {
		m.ID = NewIDAt(m.Time)
	}
}

// Publish sends each message to the stores of the rules with OnPublish
// whose filter matches its topic, skipping QoS 0 messages for rules
// without QoS0. Each store gets one Publish call with its messages in the
// order given. A message with no ID gets one from NewIDAt, and a zero Time
// becomes now: Publish sets these on the caller's messages, so the caller
// knows the ID that acks will carry, and changes nothing else. Each store
// gets its own copy of a message with the rule's Mode and, when the
// message has no expiry, the rule's default Expiry. A message that reaches
// one store through several rules is sent once, as the first of those rules
// says. A batch with a message that fails Limits.CheckPublish (for the
// Router's Limits) is rejected whole with an error matching ErrInvalid,
// and nothing is stored then.
func (r *Router) Publish(ctx context.Context, msgs ...*Message) error {
	fillAll(msgs)
	ctx, err := r.check(ctx, "Publish", func(l Limits) error { return l.CheckPublish(msgs) })
	if err != nil {
		return err
	}
	if r.events&OnPublish == 0 {
		return nil
	}
	batches := batchByStore(r, msgs, OnPublish, func(m *Message) string { return m.Topic },
		func(rt *route, m *Message) (*Message, bool) {
			if m.QoS == 0 && !rt.QoS0 {
				return nil, false
			}
			c := *m
			c.Mode = rt.Mode
			c.rule = rt.name
			if c.Expiry.IsZero() && rt.Expiry > 0 {
				c.Expiry = c.Time.Add(rt.Expiry)
			}
			return &c, true
		})
	return runBatches(r, "Publish", batches, func(s Store, msgs []*Message) error { return s.Publish(ctx, msgs...) })
}

// storeBatch is the items of one call to one store.
type storeBatch[T any] struct {
	job
	items []T
	last  int // index in the input of the batch's last item
}

// batchByStore groups items by the stores of the rules with ev whose
// filter matches topicOf(item), keeping the input order. pick returns the
// item as a rule stores it, or false to skip that rule. An item that reaches
// one store through several rules is added once, as the first of them
// (rules are matched in order) picked it; every matching rule is counted.
func batchByStore[T any](r *Router, items []T, ev Event, topicOf func(T) string, pick func(*route, T) (T, bool)) []*storeBatch[T] {
	var batches []*storeBatch[T]
	var small [8]*storeBatch[T]
	byStore := small[:]
	if len(r.stores) > len(small) {
		byStore = make([]*storeBatch[T], len(r.stores))
	}
	var buf [8]int
	for i, it := range items {
		for _, ri := range r.match(topicOf(it), ev, buf[:0]) {
			rt := r.rules[ri]
			v, ok := pick(rt, it)
			if !ok {
				continue
			}
			rt.matched.Add(1)
			b := byStore[rt.store]
			if b == nil {
				b = &storeBatch[T]{job: job{store: rt.store}, last: -1}
				byStore[rt.store] = b
				batches = append(batches, b)
			}
			b.add(ri, 1)
			if b.last != i {
				b.items = append(b.items, v)
				b.last = i
			}
		}
	}
	return batches
}

// runBatches makes one call per batch (concurrently across stores).
func runBatches[T any](r *Router, op string, batches []*storeBatch[T], call func(Store, []T) error) error {
	if len(batches) == 0 {
		return nil
	}
	jobs := make([]*job, len(batches))
	for i, b := range batches {
		store, items := r.stores[b.store], b.items
		b.call = func() error { return call(store, items) }
		jobs[i] = &b.job
	}
	return r.run(op, jobs)
}

// Retain sends m to the stores of the rules with OnRetain whose filter
// matches its topic, whatever its QoS, each store once with its own copy;
// rules' Expiry and Mode do not apply. Like Publish it sets a missing ID
// and Time on m. A message that fails Limits.CheckRetain is an error
// matching ErrInvalid.
func (r *Router) Retain(ctx context.Context, m *Message) error {
	fillAll([]*Message{m})
	ctx, err := r.check(ctx, "Retain", func(l Limits) error { return l.CheckRetain(m) })
	if err != nil {
		return err
	}
	var buf [8]int
	var jobs []*job
	byStore := make([]*job, len(r.stores))
	for _, ri := range r.match(m.Topic, OnRetain, buf[:0]) {
		rt := r.rules[ri]
		rt.matched.Add(1)
		j := byStore[rt.store]
		if j == nil {
			store, c := r.stores[rt.store], *m
			c.rule = rt.name
			j = &job{store: rt.store, call: func() error { return store.Retain(ctx, &c) }}
			byStore[rt.store] = j
			jobs = append(jobs, j)
		}
		j.add(ri, 1)
	}
	if len(jobs) == 0 {
		return nil
	}
	return r.run("Retain", jobs)
}

// Acked sends each ack to the stores of the rules with OnAcked whose
// filter matches its topic, one Acked call per store with its acks in the
// order given. Input that fails Limits.CheckAcked (an ack without an ID
// or with an invalid topic, a bad client ID) is an error matching
// ErrInvalid, and nothing is sent then.
func (r *Router) Acked(ctx context.Context, clientID string, acks ...Ack) error {
	ctx, err := r.check(ctx, "Acked", func(l Limits) error { return l.CheckAcked(clientID, acks) })
	if err != nil {
		return err
	}
	batches := batchByStore(r, acks, OnAcked, func(a Ack) string { return a.Topic },
		func(_ *route, a Ack) (Ack, bool) { return a, true })
	return runBatches(r, "Acked", batches, func(s Store, acks []Ack) error { return s.Acked(ctx, clientID, acks...) })
}

// Connected sends c to the store of every rule with OnConnected, each
// store once with its own copy. A client that fails Limits.CheckClient
// is an error matching ErrInvalid.
func (r *Router) Connected(ctx context.Context, c *Client) error {
	ctx, err := r.check(ctx, "Connected", func(l Limits) error { return l.CheckClient(c) })
	if err != nil {
		return err
	}
	var jobs []*job
	byStore := make([]*job, len(r.stores))
	for ri, rt := range r.rules {
		if rt.events&OnConnected == 0 {
			continue
		}
		rt.matched.Add(1)
		j := byStore[rt.store]
		if j == nil {
			store, cc := r.stores[rt.store], *c
			j = &job{store: rt.store, call: func() error { return store.Connected(ctx, &cc) }}
			byStore[rt.store] = j
			jobs = append(jobs, j)
		}
		j.add(ri, 1)
	}
	if len(jobs) == 0 {
		return nil
	}
	return r.run("Connected", jobs)
}

// Subscribed sends each subscription and each removed filter to the stores
// of the rules with OnSubscribed whose filter overlaps it (a shared
// subscription by its inner filter), so a store only gets the
// subscriptions its rules can serve; each store gets one call. A rule with
// History sets Subscription.History on the subscriptions it sends (a
// subscription's own History is kept). Input that fails
// Limits.CheckSubscribed is an error matching ErrInvalid, and nothing is
// sent then.
func (r *Router) Subscribed(ctx context.Context, clientID string, subs []Subscription, removed []string) error {
	ctx, err := r.check(ctx, "Subscribed", func(l Limits) error { return l.CheckSubscribed(clientID, subs, removed) })
	if err != nil {
		return err
	}
	type batch struct {
		job
		subs    []Subscription
		removed []string
		last    int
	}
	var batches []*batch
	byStore := make([]*batch, len(r.stores))
	get := func(rt *route) *batch {
		b := byStore[rt.store]
		if b == nil {
			b = &batch{job: job{store: rt.store}, last: -1}
			byStore[rt.store] = b
			batches = append(batches, b)
		}
		return b
	}
	for si, s := range subs {
		for ri, rt := range r.rules {
			if rt.events&OnSubscribed == 0 || !topic.Overlap(rt.Filter, s.Filter) {
				continue
			}
			rt.matched.Add(1)
			b := get(rt)
			b.add(ri, 1)
			if b.last != si {
				b.subs = append(b.subs, s)
				b.last = si
			}
			if rt.History {
				b.subs[len(b.subs)-1].History = true
			}
		}
	}
	for fi, f := range removed {
		for ri, rt := range r.rules {
			if rt.events&OnSubscribed == 0 || !topic.Overlap(rt.Filter, f) {
				continue
			}
			rt.matched.Add(1)
			b := get(rt)
			b.add(ri, 1)
			if b.last != len(subs)+fi {
				b.removed = append(b.removed, f)
				b.last = len(subs) + fi
			}
		}
	}
	if len(batches) == 0 {
		return nil
	}
	jobs := make([]*job, len(batches))
	for i, b := range batches {
		store, subs, removed := r.stores[b.store], b.subs, b.removed
		b.call = func() error { return store.Subscribed(ctx, clientID, subs, removed) }
		jobs[i] = &b.job
	}
	err = r.run("Subscribed", jobs)
	return errors.Join(err, r.subscribeGroups(ctx, subs))
}
