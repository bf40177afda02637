// Package storekit is the shared half of every store: what the
// persist.Store contract says the same way for all databases, written
// once, so that a store only says how its database reads and writes.
//
// A store embeds a *Kit (made by New with the store's name, limits and
// error classifier) and starts each exported method with the Kit's entry
// for that verb, which returns the error that stops the call (a done
// context as is, use after Close as persist.ErrClosed, bad input as
// persist.ErrInvalid with a message naming what was wrong) or the input
// prepared as the contract wants it:
//
//	func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
//		msgs, err := s.kit.Publish(ctx, msgs) // checked, unexpired, each ID once
//		if err != nil || len(msgs) == 0 {
//			return err
//		}
//		err = s.write(ctx, msgs)             // the database's part
//		return s.kit.Fail(ctx, "Publish", err) // one error style
//	}
//
// Reads get a Query: the filter to match (a $share/<group>/ prefix
// removed), the time bounds and the limit, and Query.Finish applies the
// match, expiry and Since post-filter, the ID order and the limit to what
// a coarse database read returned. Cursors folds fanout acks into the
// highest ID per topic, Subscriptions keeps the last subscription per
// filter and Start gives a new subscription its fanout start.
//
// Input that a persist.Router or persist.Pipeline has already checked
// against the store's limits (persist.CheckedFor) is not checked again.
//
// The kit is what gocloud's docstore/driver helpers are to its drivers;
// the executable spec of the whole contract is the memstore package,
// which is built on this kit too, and persisttest, which every store passes.
package storekit

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// Classify tells the kind of a database error (a persist sentinel such
// as persist.ErrNotFound, or nil) and whether trying again may succeed.
type Classify func(err error) (kind error, retryable bool)

// Kit holds the shared state of one store (its name, limits and whether it
// is closed) and checks and prepares every call's input. It is safe for
// concurrent use.
type Kit struct {
	name     string
	limits   persist.Limits
	classify Classify
	closed   atomic.Bool
}

// New returns the kit of a store called name in errors (such as
// "sqlstore(postgres)" or "redisstore"), keeping at most limits and
// classifying database errors with classify (nil: none is retryable
// unless it is a network error, see persist.IsRetryable).
func New(name string, limits persist.Limits, classify Classify) *Kit {
	if classify == nil {
		classify = func(error) (error, bool) { return nil, false }
	}
	return &Kit{name: name, limits: limits, classify: classify}
}

// Name returns the store's name as errors give it.
func (k *Kit) Name() string { return k.name }

// Limits returns the store's limits (a store implements persist.Limiter
// by returning them).
func (k *Kit) Limits() persist.Limits { return k.limits }

// Close marks the store closed and reports whether this was the first
// call: the store then releases what it holds.
func (k *Kit) Close() bool { return !k.closed.Swap(true) }

// Closed reports whether Close was called.
func (k *Kit) Closed() bool { return k.closed.Load() }

// Enter returns the error that stops op before it starts: the context's
// error when ctx is done, an error matching persist.ErrClosed after Close.
func (k *Kit) Enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if k.closed.Load() {
		return &persist.Error{Store: k.name, Op: op, Kind: persist.ErrClosed}
	}
	return nil
}

// Fail turns a database error of op into the error the store returns: nil
// for nil; the context's error as is when ctx is done; an error matching
// persist.ErrClosed after Close; an *persist.Error given by the store with
// this store's name and op filled in (and, when it has no Kind, the kind
// and retryability the classifier says of its Err: a store describes a
// database error with What without losing them); else a *persist.Error of
// the kind and retryability the classifier says, unwrapping to err.
func (k *Kit) Fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if k.closed.Load() {
		return &persist.Error{Store: k.name, Op: op, Kind: persist.ErrClosed, Err: err}
	}
	if pe, ok := err.(*persist.Error); ok {
		if pe.Kind == nil && pe.Err != nil {
			// A store's description (What) of a database error: the
			// classifier still says what the error is.
			c := *pe
			c.Kind, c.Retryable = k.classify(pe.Err)
			c.Retryable = c.Retryable || pe.Retryable || persist.IsRetryable(pe.Err)
			pe = &c
		}
		return k.own(op, pe)
	}
	kind, retry := k.classify(err)
	return persist.Wrap(k.name, op, kind, err, retry)
}

// Error returns an error of op matching kind, about what (such as
// `client "c"`, may be empty), caused by cause.
func (k *Kit) Error(op string, kind error, what string, cause error) error {
	return &persist.Error{Store: k.name, Op: op, Kind: kind, What: what, Err: cause}
}

// own fills in the store's name and op of an error made without them.
func (k *Kit) own(op string, pe *persist.Error) error {
	if pe.Store != "" && pe.Op != "" {
		return pe
	}
	c := *pe
	if c.Store == "" {
		c.Store = k.name
	}
	if c.Op == "" {
		c.Op = op
	}
	return &c
}

// check enters op and, unless ctx says it was checked already, runs fn.
func (k *Kit) check(ctx context.Context, op string, fn func(persist.Limits) error) error {
	if err := k.Enter(ctx, op); err != nil {
		return err
	}
	if persist.CheckedFor(ctx, k.limits) {
		return nil
	}
	if err := fn(k.limits); err != nil {
		return k.own(op, err.(*persist.Error))
	}
	return nil
}

// Connected enters Connected and checks c (see persist.Limits.CheckClient).
func (k *Kit) Connected(ctx context.Context, c *persist.Client) error {
	return k.check(ctx, "Connected", func(l persist.Limits) error { return l.CheckClient(c) })
}

// Subscribed enters Subscribed, checks its input and returns subs with the
// last subscription of each filter only (see Subscriptions). Nothing is
// to be written when both it and removed are empty.
func (k *Kit) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) ([]persist.Subscription, error) {
	err := k.check(ctx, "Subscribed", func(l persist.Limits) error { return l.CheckSubscribed(clientID, subs, removed) })
	if err != nil {
		return nil, err
	}
	return Subscriptions(subs), nil
}

// Publish enters Publish, checks the batch (the whole batch is rejected
// when one message is bad) and returns the messages to store: those not
// expired, each ID once (its first message). An empty result means
// nothing is to be written.
func (k *Kit) Publish(ctx context.Context, msgs []*persist.Message) ([]*persist.Message, error) {
	if err := k.check(ctx, "Publish", func(l persist.Limits) error { return l.CheckPublish(msgs) }); err != nil {
		return nil, err
	}
	now := time.Now()
	keep := make([]*persist.Message, 0, len(msgs))
	seen := make(map[string]struct{}, len(msgs))
	for _, m := range msgs {
		if _, dup := seen[m.ID]; dup || m.Expired(now) {
			continue
		}
		seen[m.ID] = struct{}{}
		keep = append(keep, m)
	}
	return keep, nil
}

// Acked enters Acked and checks its input (see persist.Limits.CheckAcked).
func (k *Kit) Acked(ctx context.Context, clientID string, acks []persist.Ack) error {
	return k.check(ctx, "Acked", func(l persist.Limits) error { return l.CheckAcked(clientID, acks) })
}

// Claim enters Claim and checks its input (see persist.Limits.CheckClaim).
func (k *Kit) Claim(ctx context.Context, group, owner string, ids []string) error {
	return k.check(ctx, "Claim", func(l persist.Limits) error { return l.CheckClaim(group, owner, ids) })
}

// Retain enters Retain and checks m (see persist.Limits.CheckRetain).
func (k *Kit) Retain(ctx context.Context, m *persist.Message) error {
	return k.check(ctx, "Retain", func(l persist.Limits) error { return l.CheckRetain(m) })
}

// Lookup enters op, a lookup by client ID (Client, Subscriptions), and
// checks the ID.
func (k *Kit) Lookup(ctx context.Context, op, clientID string) error {
	return k.check(ctx, op, func(l persist.Limits) error { return l.CheckClientID(clientID) })
}

// Ping enters Ping.
func (k *Kit) Ping(ctx context.Context) error { return k.Enter(ctx, "Ping") }

// Query is one read, prepared: what FetchOffline or Retained asked for.
type Query struct {
	// ClientID is the reading client ("" for Retained).
	ClientID string
	// Filter is the filter as given: the key of the client's stored
	// subscription (and its fanout start).
	Filter string
	// Match is the filter messages are matched against: Filter without
	// a $share/<group>/ prefix.
	Match string
	// Fetch is the fetch's options (zero for Retained); Lease is set
	// (Fetch.LeaseOrDefault).
	Fetch persist.Fetch
	// Now is the moment of the read: messages expired at Now are left out.
	Now time.Time
	// Since is the oldest Message.Time returned; zero means no bound.
	Since time.Time
}

func newQuery(clientID, filter string, opt persist.Fetch) *Query {
	q := &Query{ClientID: clientID, Filter: filter, Match: filter, Fetch: opt, Now: time.Now()}
	if _, inner, ok := topic.Shared(filter); ok {
		q.Match = inner
	}
	q.Fetch.Lease = opt.LeaseOrDefault()
	if opt.Since > 0 {
		q.Since = q.Now.Add(-opt.Since)
	}
	return q
}

// Fetch enters FetchOffline, checks its input and returns the query.
func (k *Kit) Fetch(ctx context.Context, clientID, filter string, opt persist.Fetch) (*Query, error) {
	err := k.check(ctx, "FetchOffline", func(l persist.Limits) error { return l.CheckFetch(clientID, filter, opt) })
	if err != nil {
		return nil, err
	}
	return newQuery(clientID, filter, opt), nil
}

// Retained enters Retained, checks the filter and returns the query.
func (k *Kit) Retained(ctx context.Context, filter string) (*Query, error) {
	if err := k.check(ctx, "Retained", func(l persist.Limits) error { return l.CheckFilter(filter) }); err != nil {
		return nil, err
	}
	return newQuery("", filter, persist.Fetch{}), nil
}

// Keep reports whether a message read for q belongs in its result: its
// topic matches (a filter starting with a wildcard matches no $ topic
// [MQTT-4.7.2-1]), it is not expired and not older than Since.
func (q *Query) Keep(m *persist.Message) bool {
	return m != nil && topic.Match(q.Match, m.Topic) && !m.Expired(q.Now) && (q.Since.IsZero() || !m.Time.Before(q.Since))
}

// Full reports whether n messages reach the fetch's limit.
func (q *Query) Full(n int) bool { return q.Fetch.Limit > 0 && n >= q.Fetch.Limit }

// Finish returns the messages of msgs that q keeps, in ID order, at most
// Limit of them. It reorders msgs in place.
func (q *Query) Finish(msgs []*persist.Message) []*persist.Message {
	out := slices.DeleteFunc(msgs, func(m *persist.Message) bool { return !q.Keep(m) })
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	if q.Full(len(out)) {
		out = out[:q.Fetch.Limit]
	}
	return out
}

// FinishRetained returns the retained messages of msgs that match q and
// are not expired, ordered by topic byte-wise. It reorders msgs in place.
func (q *Query) FinishRetained(msgs []*persist.Message) []*persist.Message {
	out := slices.DeleteFunc(msgs, func(m *persist.Message) bool {
		return m == nil || !topic.Match(q.Match, m.Topic) || m.Expired(q.Now)
	})
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// SortSubscriptions orders subs by filter byte-wise, as
// persist.SubscriptionLookup returns them.
func SortSubscriptions(subs []persist.Subscription) {
	slices.SortFunc(subs, func(a, b persist.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
}

// Subscriptions returns subs with only the last subscription of each
// filter (subs apply in order, as MQTT handles a SUBSCRIBE), in the order
// of those last ones. It returns subs itself when no filter repeats.
func Subscriptions(subs []persist.Subscription) []persist.Subscription {
	if len(subs) < 2 {
		return subs
	}
	last := make(map[string]int, len(subs))
	for i := range subs {
		last[subs[i].Filter] = i
	}
	if len(last) == len(subs) {
		return subs
	}
	out := make([]persist.Subscription, 0, len(last))
	for i := range subs {
		if last[subs[i].Filter] == i {
			out = append(out, subs[i])
		}
	}
	return out
}

// Start returns the fanout start of a new subscription: "" (before every
// message) when it asks for History, else its Start when the caller set
// one (an async pipeline does), else the moment it is stored (an ID made
// now: messages with greater IDs are after it). A repeated subscription
// keeps the start it has; the store must not overwrite it.
func Start(sub *persist.Subscription) string {
	switch {
	case sub.History:
		return ""
	case sub.Start != "":
		return sub.Start
	}
	return persist.NewID()
}

// Cursors folds fanout acks into cursors: of the acks for which fanout
// reports true (by index), the highest ID of each topic, as Acks ordered
// by topic byte-wise (a fixed order, so that concurrent writers lock alike).
func Cursors(acks []persist.Ack, fanout func(i int) bool) []persist.Ack {
	hi := make(map[string]string, len(acks))
	for i, a := range acks {
		if fanout(i) && a.ID > hi[a.Topic] {
			hi[a.Topic] = a.ID
		}
	}
	out := make([]persist.Ack, 0, len(hi))
	for t, id := range hi {
		out = append(out, persist.Ack{ID: id, Topic: t})
	}
	slices.SortFunc(out, func(a, b persist.Ack) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}
