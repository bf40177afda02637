package persist

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/mqttpersist/mqttpersist/topic"
)

// Fetchable reports whether FetchOffline can give back a message that
// Publish stores for the topic name at this QoS, and in which mode: the
// first rule with OnPublish that sends it to a store (as Publish decides)
// has a store that a rule with OnFetch, the same mode and a filter matching
// name reads. Broker adapters use it to know which messages the database
// delivers to offline subscribers. It returns false after Close.
func (r *Router) Fetchable(name string, qos byte) (Mode, bool) {
	if r.closed.Load() || r.events&OnPublish == 0 || r.events&OnFetch == 0 {
		return 0, false
	}
	var buf [8]int
	matched := r.match(name, OnPublish|OnFetch, buf[:0])
	for k, ri := range matched {
		rt := r.rules[ri]
		if rt.events&OnPublish == 0 || (qos == 0 && !rt.QoS0) {
			continue
		}
		first := true
		for _, pj := range matched[:k] {
			if p := r.rules[pj]; p.store == rt.store && p.events&OnPublish != 0 && (qos > 0 || p.QoS0) {
				first = false
				break
			}
		}
		if !first {
			continue
		}
		for _, fj := range matched {
			if f := r.rules[fj]; f.events&OnFetch != 0 && f.store == rt.store && f.Mode == rt.Mode {
				return rt.Mode, true
			}
		}
	}
	return 0, false
}

// fetchGroup is one FetchOffline call to one store, for the rules in
// filters.
type fetchGroup struct {
	store   int
	client  string // the client ID passed to the store
	group   bool   // a shared group's fanout: claimed (router_share.go)
	filter  string // the filter passed to the store
	opt     Fetch
	rules   []int
	filters []string // the rules' filters
	got     []*Message
	err     error
}

// FetchOffline returns the offline messages of clientID matching filter
// from the stores of the rules with OnFetch whose filter overlaps it, in
// ID order, without duplicate IDs, at most opt.Limit of them (0: no
// limit).
//
// Each store is asked with opt over the rule's Offline defaults (opt's
// non-zero Limit, Since and Lease win) and always in the rule's Mode
// (opt.Mode is ignored); only messages whose topic matches both filter and
// the rule's filter are kept. Rules with the same store, mode and options
// share one call.
//
// A queue fetch claims what it returns, so the Router never drops a
// claimed message: a queue rule's store is asked for the intersection of
// filter and the rule's filter, and, when opt.Limit is set, queue rules
// are asked one after another for what is left of the limit; fanout rules,
// whose fetches claim nothing, are asked afterwards (concurrently) for the
// rest, and only their messages are cut to opt.Limit. So with a limit,
// queue messages come first and the result is not always the lowest IDs of
// all rules. Without a limit every store is asked concurrently.
//
// When a store fails, FetchOffline returns the messages of the other
// stores along with the error (claimed queue messages are not lost).
func (r *Router) FetchOffline(ctx context.Context, clientID, filter string, opt Fetch) ([]*Message, error) {
	ctx, err := r.check(ctx, "FetchOffline", func(l Limits) error { return l.CheckFetch(clientID, filter, opt) })
	if err != nil {
		return nil, err
	}
	inner := filter
	_, in, shared := topic.Shared(filter)
	groups := shared && r.SharedGroups()
	if shared {
		inner = in
	}
	var queue, fanout []*fetchGroup
	for ri, rt := range r.rules {
		if rt.events&OnFetch == 0 || !topic.Overlap(rt.Filter, filter) {
			continue
		}
		if shared && rt.Mode == Fanout && !groups {
			continue // a group without claims has no fanout position
		}
		eff := rt.Offline
		eff.Mode = rt.Mode
		if opt.Limit != 0 {
			eff.Limit = opt.Limit
		}
		if opt.Since != 0 {
			eff.Since = opt.Since
		}
		if opt.Lease != 0 {
			eff.Lease = opt.Lease
		}
		client, q, list := clientID, filter, &fanout
		switch {
		case rt.Mode == Queue:
			q, list = intersect(rt.Filter, inner), &queue
		case shared:
			// The group's position, read as the group's own client (see
			// router_share.go).
			client, q = filter, inner
			if client == clientID {
				continue // a client named as the group (broker adapters refuse such IDs)
			}
		}
		var g *fetchGroup
		for _, x := range *list {
			if x.store == rt.store && x.filter == q && x.opt == eff {
				g = x
				break
			}
		}
		if g == nil {
			g = &fetchGroup{store: rt.store, client: client, group: client != clientID, filter: q, opt: eff}
			*list = append(*list, g)
		}
		g.rules = append(g.rules, ri)
		g.filters = append(g.filters, rt.Filter)
	}
	call := func(g *fetchGroup) {
		g.got, g.err = r.stores[g.store].FetchOffline(ctx, g.client, g.filter, g.opt)
		if g.err != nil {
			g.err = r.ruleError("FetchOffline", g.rules, g.err)
		}
	}
	if groups {
		// A member gets the group's messages it claims: each group's
		// store is asked for more than the limit (other members may hold
		// some) and claims up to the limit of them.
		fetch := call
		call = func(g *fetchGroup) {
			if !g.group {
				fetch(g)
				return
			}
			want := g.opt.Limit
			if want > 0 {
				g.opt.Limit = 4 * want
			}
			fetch(g)
			var kept []*Message
			for _, m := range g.got {
				if m != nil && topic.Match(filter, m.Topic) && matchesAny(g.filters, m.Topic) {
					kept = append(kept, m)
				}
			}
			got, err := r.claimGroup(ctx, g, clientID, kept, want)
			g.got, g.err = got, errors.Join(g.err, err)
		}
	}
	seen := map[string]bool{}
	var errs []error
	// keep appends g's messages that match filter and one of g's rule
	// filters and were not seen yet.
	keep := func(out []*Message, g *fetchGroup) []*Message {
		if g.err != nil {
			errs = append(errs, g.err)
		}
		for _, m := range g.got {
			if m == nil || seen[m.ID] || !topic.Match(filter, m.Topic) {
				continue
			}
			for _, f := range g.filters {
				if topic.Match(f, m.Topic) {
					seen[m.ID] = true
					out = append(out, m)
					break
				}
			}
		}
		return out
	}
	var out []*Message
	if opt.Limit == 0 {
		all := append(queue, fanout...)
		runGroups(all, call)
		for _, g := range all {
			out = keep(out, g)
		}
		sortByID(out)
		return out, errors.Join(errs...)
	}
	for _, g := range queue {
		left := opt.Limit - len(out)
		if left <= 0 {
			break
		}
		if g.opt.Limit == 0 || g.opt.Limit > left {
			g.opt.Limit = left
		}
		call(g)
		out = keep(out, g) // never cut: the store claimed these
	}
	if left := opt.Limit - len(out); left > 0 && len(fanout) > 0 {
		for _, g := range fanout {
			if g.opt.Limit == 0 || g.opt.Limit > left {
				g.opt.Limit = left
			}
		}
		runGroups(fanout, call)
		var more []*Message
		for _, g := range fanout {
			more = keep(more, g)
		}
		sortByID(more)
		if len(more) > left {
			if groups {
				for _, g := range fanout {
					r.releaseGroup(ctx, g, clientID, cut(g.got, more[left:]))
				}
			}
			more = more[:left]
		}
		out = append(out, more...)
	}
	sortByID(out)
	return out, errors.Join(errs...)
}

// matchesAny reports whether one of filters matches name.
func matchesAny(filters []string, name string) bool {
	for _, f := range filters {
		if topic.Match(f, name) {
			return true
		}
	}
	return false
}

// cut returns the messages of got that are in dropped.
func cut(got, dropped []*Message) []*Message {
	ids := make(map[string]bool, len(dropped))
	for _, m := range dropped {
		ids[m.ID] = true
	}
	var out []*Message
	for _, m := range got {
		if m != nil && ids[m.ID] {
			out = append(out, m)
		}
	}
	return out
}

func runGroups(gs []*fetchGroup, call func(*fetchGroup)) {
	if len(gs) == 1 {
		call(gs[0])
		return
	}
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() { call(g) })
	}
	wg.Wait()
}

func sortByID(msgs []*Message) {
	slices.SortStableFunc(msgs, func(a, b *Message) int { return strings.Compare(a.ID, b.ID) })
}

// intersect returns the filter matching exactly the topic names both valid,
// non-shared, overlapping filters a and b match.
func intersect(a, b string) string {
	var out []string
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		switch {
		case al == "#":
			return strings.Join(append(out, b), "/")
		case bl == "#":
			return strings.Join(append(out, a), "/")
		case al == "+":
			out = append(out, bl)
		default:
			out = append(out, al)
		}
		switch {
		case !amore && !bmore:
			return strings.Join(out, "/")
		case !amore || !bmore:
			// The other one goes on with "/#", which also matches its
			// parent level [MQTT-4.7.1-2].
			return strings.Join(out, "/")
		}
		a, b = arest, brest
	}
}
