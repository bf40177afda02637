package persist

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mqttpersist/mqttpersist/topic"
)

// Client returns the client's state from the store of the first rule with
// OnConnected whose store implements ClientLookup (every such rule gets
// every client). It returns an error matching ErrUnsupported when there is
// none.
func (r *Router) Client(ctx context.Context, clientID string) (*Client, error) {
	ctx, err := r.check(ctx, "Client", func(l Limits) error { return l.CheckClientID(clientID) })
	if err != nil {
		return nil, err
	}
	for ri, rt := range r.rules {
		if l, ok := rt.Store.(ClientLookup); ok && rt.events&OnConnected != 0 {
			c, err := l.Client(ctx, clientID)
			if err != nil {
				return nil, r.ruleError("Client", []int{ri}, err)
			}
			return c, nil
		}
	}
	return nil, &Error{Store: "router", Op: "Client", Kind: ErrUnsupported, Err: fmt.Errorf("no rule with client.connected has a store that implements ClientLookup")}
}

// Subscriptions returns a client's subscriptions from the stores of every
// rule with OnSubscribed that implements SubscriptionLookup, since
// Subscribed sends each store only the subscriptions its rules overlap. A
// filter found in several stores is returned once, from the first rule's
// store; the result is ordered by filter. It returns an error matching
// ErrUnsupported when no such store implements SubscriptionLookup.
func (r *Router) Subscriptions(ctx context.Context, clientID string) ([]Subscription, error) {
	ctx, err := r.check(ctx, "Subscriptions", func(l Limits) error { return l.CheckClientID(clientID) })
	if err != nil {
		return nil, err
	}
	type res struct {
		rules []int
		subs  []Subscription
		err   error
	}
	var lookups []*res
	byStore := make([]*res, len(r.stores))
	for ri, rt := range r.rules {
		if _, ok := rt.Store.(SubscriptionLookup); !ok || rt.events&OnSubscribed == 0 {
			continue
		}
		if byStore[rt.store] == nil {
			byStore[rt.store] = &res{}
			lookups = append(lookups, byStore[rt.store])
		}
		byStore[rt.store].rules = append(byStore[rt.store].rules, ri)
	}
	if len(lookups) == 0 {
		return nil, &Error{Store: "router", Op: "Subscriptions", Kind: ErrUnsupported, Err: fmt.Errorf("no rule with session.subscribed has a store that implements SubscriptionLookup")}
	}
	parallel(len(lookups), func(i int) {
		l := lookups[i]
		l.subs, l.err = r.rules[l.rules[0]].Store.(SubscriptionLookup).Subscriptions(ctx, clientID)
	})
	var errs []error
	var out []Subscription
	seen := map[string]bool{}
	for _, l := range lookups {
		if l.err != nil {
			errs = append(errs, r.ruleError("Subscriptions", l.rules, l.err))
			continue
		}
		for _, s := range l.subs {
			if !seen[s.Filter] {
				seen[s.Filter] = true
				out = append(out, s)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return out, nil
}

// Retained returns the retained messages matching filter from the stores
// of every rule with OnRetain whose filter overlaps it and whose store
// implements RetainLookup, keeping a store's messages only for topics its
// rules match. A topic found in several stores is returned once, from the
// first rule's store; the result is ordered by topic. It returns an error
// matching ErrUnsupported when no rule with OnRetain has a store that
// implements RetainLookup.
func (r *Router) Retained(ctx context.Context, filter string) ([]*Message, error) {
	ctx, err := r.check(ctx, "Retained", func(l Limits) error { return l.CheckFilter(filter) })
	if err != nil {
		return nil, err
	}
	type res struct {
		rules   []int
		filters []string
		msgs    []*Message
		err     error
	}
	var lookups []*res
	byStore := make([]*res, len(r.stores))
	found := false
	for ri, rt := range r.rules {
		if _, ok := rt.Store.(RetainLookup); !ok || rt.events&OnRetain == 0 {
			continue
		}
		found = true
		if !topic.Overlap(rt.Filter, filter) {
			continue
		}
		if byStore[rt.store] == nil {
			byStore[rt.store] = &res{}
			lookups = append(lookups, byStore[rt.store])
		}
		l := byStore[rt.store]
		l.rules = append(l.rules, ri)
		l.filters = append(l.filters, rt.Filter)
	}
	if !found {
		return nil, &Error{Store: "router", Op: "Retained", Kind: ErrUnsupported, Err: fmt.Errorf("no rule with message.retain has a store that implements RetainLookup")}
	}
	parallel(len(lookups), func(i int) {
		l := lookups[i]
		l.msgs, l.err = r.rules[l.rules[0]].Store.(RetainLookup).Retained(ctx, filter)
	})
	var errs []error
	var out []*Message
	seen := map[string]bool{}
	for _, l := range lookups {
		if l.err != nil {
			errs = append(errs, r.ruleError("Retained", l.rules, l.err))
			continue
		}
		for _, m := range l.msgs {
			if m == nil || seen[m.Topic] {
				continue
			}
			for _, f := range l.filters {
				if topic.Match(f, m.Topic) {
					seen[m.Topic] = true
					out = append(out, m)
					break
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *Message) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}

// Ping pings every distinct store that implements Pinger, concurrently, and
// joins their errors.
func (r *Router) Ping(ctx context.Context) error {
	if r.closed.Load() {
		return r.errClosed("Ping")
	}
	var pingers []Pinger
	var rules [][]int
	for si, s := range r.stores {
		p, ok := s.Store().(Pinger)
		if !ok {
			continue
		}
		var rs []int
		for ri, rt := range r.rules {
			if rt.store == si {
				rs = append(rs, ri)
			}
		}
		pingers = append(pingers, p)
		rules = append(rules, rs)
	}
	errs := make([]error, len(pingers))
	parallel(len(pingers), func(i int) {
		if err := pingers[i].Ping(ctx); err != nil {
			errs[i] = r.ruleError("Ping", rules[i], err)
		}
	})
	return errors.Join(errs...)
}
