package persist

import (
	"context"
	"errors"

	"github.com/mqttpersist/mqttpersist/topic"
)

// Shared subscription groups, one group across nodes.
//
// A group ("$share/<group>/<filter>") keeps its fanout position as a
// client of its own: its ID is the shared filter, its one subscription is
// the inner filter, stored (with a start, like any subscription) when a
// member subscribes, and its acks are the acks of the messages its members
// acknowledged. A member's fanout fetch of the shared filter reads the
// group's unacknowledged messages and keeps those the store lets the
// member claim (Claimer): each message is with one member at a time,
// whichever node the members are on, until it is acked for the group or
// the member's lease runs out. A message published while the group had no
// member connected waits for the next one, as a session's would.
//
// The group's subscription stays when its members leave (the stores keep
// no count of members across nodes): a member that joins later gets what
// the group has not acknowledged, as of a durable consumer group, within
// the messages' expiry.

// SharedGroups reports whether a fanout FetchOffline of a shared filter
// gives out the group's messages one member at a time, cluster-wide: every
// store of a fanout rule with OnFetch is a Claimer. A broker adapter then
// delivers a group's messages from the store only (persist/mochi does);
// otherwise such a fetch returns no fanout messages and the adapter picks
// a member on each node.
func (r *Router) SharedGroups() bool {
	any := false
	for _, rt := range r.rules {
		if rt.events&OnFetch == 0 || rt.Mode != Fanout {
			continue
		}
		if claimerOf(r.given[rt.store]) == nil {
			return false
		}
		any = true
	}
	return any
}

// claimerOf returns s as a Claimer, looking through pipelines (a store's
// Store method), or nil.
func claimerOf(s Store) Claimer {
	for s != nil {
		if c, ok := s.(Claimer); ok {
			return c
		}
		w, ok := s.(interface{ Store() Store })
		if !ok {
			return nil
		}
		s = w.Store()
	}
	return nil
}

// groupSubs returns the subscriptions of the groups that subs joins, each
// a subscription of the group (its ID the shared filter) to the inner
// filter, when the Router keeps groups.
func (r *Router) groupSubs(subs []Subscription) map[string]Subscription {
	var out map[string]Subscription
	for _, s := range subs {
		_, inner, ok := topic.Shared(s.Filter)
		if !ok {
			continue
		}
		if out == nil {
			if !r.SharedGroups() {
				return nil
			}
			out = map[string]Subscription{}
		}
		out[s.Filter] = Subscription{Filter: inner, QoS: 2, History: s.History, Start: s.Start}
	}
	return out
}

// subscribeGroups stores the subscriptions of the groups that subs join
// (see groupSubs); a group stored already keeps its start.
func (r *Router) subscribeGroups(ctx context.Context, subs []Subscription) error {
	var errs []error
	for group, gs := range r.groupSubs(subs) {
		errs = append(errs, r.Subscribed(ctx, group, []Subscription{gs}, nil))
	}
	return errors.Join(errs...)
}

// claimGroup keeps, of the group's messages g fetched (got, in ID order),
// those the member claims from g's store, at most limit (0: no limit),
// asking in pages of the limit so that messages other members hold do not
// take the member's share.
func (r *Router) claimGroup(ctx context.Context, g *fetchGroup, member string, got []*Message, limit int) ([]*Message, error) {
	cl := claimerOf(r.given[g.store])
	if cl == nil || len(got) == 0 {
		return nil, nil
	}
	lease := g.opt.LeaseOrDefault()
	byID := make(map[string]*Message, len(got))
	var out []*Message
	for len(got) > 0 && (limit == 0 || len(out) < limit) {
		n := len(got)
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		ids := make([]string, n)
		for i, m := range got[:n] {
			ids[i] = m.ID
			byID[m.ID] = m
		}
		got = got[n:]
		won, err := cl.Claim(ctx, g.client, member, lease, ids...)
		if err != nil {
			return out, r.ruleError("FetchOffline", g.rules, err)
		}
		for _, id := range won {
			if m := byID[id]; m != nil {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// releaseGroup gives back the member's claims of msgs (fetched for group
// g but not returned).
func (r *Router) releaseGroup(ctx context.Context, g *fetchGroup, member string, msgs []*Message) {
	cl := claimerOf(r.given[g.store])
	if cl == nil || len(msgs) == 0 {
		return
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	_, _ = cl.Claim(ctx, g.client, member, 0, ids...) // else the lease runs out
}

// ReleaseGroup gives back member's claims of the group's messages with the
// given IDs (a member that leaves, or fetched more than it sends): another
// member can claim them at once instead of when the lease runs out. The
// group is the shared filter.
func (r *Router) ReleaseGroup(ctx context.Context, group, member string, ids ...string) error {
	ctx, err := r.check(ctx, "ReleaseGroup", func(l Limits) error { return l.CheckClaim(group, member, ids) })
	if err != nil || len(ids) == 0 {
		return err
	}
	var errs []error
	done := map[int]bool{}
	for _, rt := range r.rules {
		if rt.events&OnFetch == 0 || rt.Mode != Fanout || done[rt.store] {
			continue
		}
		done[rt.store] = true
		if cl := claimerOf(r.given[rt.store]); cl != nil {
			if _, err := cl.Claim(ctx, group, member, 0, ids...); err != nil {
				errs = append(errs, r.ruleError("ReleaseGroup", []int{rt.index}, err))
			}
		}
	}
	return errors.Join(errs...)
}
