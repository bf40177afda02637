package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/topic"
)

// This file holds the deliberate contract violations that this module's
// tests switch on (see internal/memfault) to see persisttest catch them.
// A Store no test touched has no bug: each function here then does
// nothing, and the rest of the package reads as the contract.

// bug reports whether the bug named b is switched on.
func (s *Store) bug(b string) bool { return s.bugs.Has(b) }

// ctx returns the context the kit checks: ctx, or with "ignore ctx" one
// that is never done.
func (s *Store) ctx(ctx context.Context) context.Context {
	if s.bug("ignore ctx") {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// key returns the map key of a client ID or topic: itself, unless a bug
// compares them as a database collation would.
func (s *Store) key(x string) string {
	switch {
	case s.bug("case-insensitive"):
		return strings.ToLower(x)
	case s.bug("pad space"):
		return strings.TrimRight(x, " ")
	}
	return x
}

// ackKey returns the key of a client's fanout acks: its ID, or with
// "acks shared" one set for every client.
func (s *Store) ackKey(id string) string {
	if s.bug("acks shared") {
		return ""
	}
	return id
}

// cumulativeAcks keeps, with "ack skips earlier", a cursor per client and
// topic that an ack moves to its ID, skipping every earlier message of the
// topic (acks taken as cumulative, which loses a message stored after a
// later one was acked); with "queue ack moves cursor" queue acks move it
// too.
func (s *Store) cumulativeAcks(id string, acks []persist.Ack, queue []bool) {
	if !s.bug("ack skips earlier") && !s.bug("queue ack moves cursor") {
		return
	}
	fanout := func(i int) bool { return !queue[i] || s.bug("queue ack moves cursor") }
	for _, a := range storekit.Cursors(acks, fanout) {
		cur := s.skipTo[id]
		if cur == nil {
			cur = map[string]string{}
			s.skipTo[id] = cur
		}
		cur[a.Topic] = max(cur[a.Topic], a.ID)
	}
}

// skipped reports whether one of the old-cursor bugs skips m for client id.
func (s *Store) skipped(id string, m *persist.Message) bool {
	return m.ID <= s.skipTo[id][m.Topic]
}

// faultError returns err as FetchOffline returns it; with "name twice" an
// invalid input error says the store's name twice.
func (s *Store) faultError(op string, err error) error {
	if s.bug("name twice") {
		return fmt.Errorf("%s: %s: %w", name, op, err)
	}
	return err
}

// faultConnected runs the bugs about Connected's input; done tells that it
// answered the call.
func (s *Store) faultConnected(ctx context.Context, c *persist.Client) (done bool, err error) {
	if s.bugs == nil || s.kit.Limits().CheckClient(c) == nil {
		return false, nil
	}
	switch {
	case s.bug("lax Connected"): // takes it as given
		if err := s.kit.Enter(s.ctx(ctx), "Connected"); err != nil || c == nil {
			return true, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.connect(c)
		return true, nil
	case s.bug("partial connect") && c != nil && s.kit.Limits().CheckClientID(c.ID) == nil: // writes, then refuses
		s.mu.Lock()
		s.connect(c)
		s.mu.Unlock()
	}
	return false, nil
}

// faultSubscribed runs the bugs about Subscribed's input: it returns the
// input to go on with, or done.
func (s *Store) faultSubscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) (_ []persist.Subscription, _ []string, done bool, _ error) {
	l := s.kit.Limits()
	if s.bugs == nil || l.CheckSubscribed(clientID, subs, removed) == nil {
		return subs, removed, false, nil
	}
	okID := l.CheckClientID(clientID) == nil
	goodSubs := slices.DeleteFunc(slices.Clone(subs), func(x persist.Subscription) bool {
		return l.CheckSubscribed(clientID, []persist.Subscription{x}, nil) != nil
	})
	goodRemoved := slices.DeleteFunc(slices.Clone(removed), func(f string) bool {
		return l.CheckSubscribed(clientID, nil, []string{f}) != nil
	})
	switch {
	case s.bug("lax Subscribed"): // leaves out what is bad
		if !okID {
			return nil, nil, true, s.kit.Enter(s.ctx(ctx), "Subscribed")
		}
		return goodSubs, goodRemoved, false, nil
	case s.bug("lax removed"): // checks subs only
		return subs, goodRemoved, false, nil
	case s.bug("partial subscribe") && okID: // writes what is good, then refuses
		s.mu.Lock()
		s.subscribe(clientID, storekit.Subscriptions(goodSubs), goodRemoved)
		s.mu.Unlock()
	}
	return subs, removed, false, nil
}

// faultPublish runs the bugs about Publish's input.
func (s *Store) faultPublish(ctx context.Context, msgs []*persist.Message) (_ []*persist.Message, done bool, _ error) {
	if s.bugs == nil {
		return msgs, false, nil
	}
	if s.bug("packet limit") {
		total := 0
		for _, m := range msgs {
			if m != nil {
				total += len(m.Payload)
			}
		}
		if total > 16<<20 {
			return nil, true, fmt.Errorf("memstore: packet of %d bytes is too large", total)
		}
	}
	l := s.kit.Limits()
	if l.CheckPublish(msgs) == nil {
		return msgs, false, nil
	}
	bad := func(m *persist.Message) bool { return l.CheckPublish([]*persist.Message{m}) != nil }
	switch {
	case s.bug("lax Publish"): // leaves out what is bad
		return slices.DeleteFunc(slices.Clone(msgs), bad), false, nil
	case s.bug("partial batch"): // writes the messages before the bad one, then refuses
		if i := slices.IndexFunc(msgs, bad); i > 0 {
			if err := s.Publish(ctx, msgs[:i]...); err != nil {
				return nil, true, err
			}
		}
	}
	return msgs, false, nil
}

// faultAcked runs the bugs about Acked's input.
func (s *Store) faultAcked(ctx context.Context, clientID string, acks []persist.Ack) (_ []persist.Ack, done bool, _ error) {
	l := s.kit.Limits()
	if s.bugs == nil || l.CheckAcked(clientID, acks) == nil {
		return acks, false, nil
	}
	okID := l.CheckClientID(clientID) == nil
	good := slices.DeleteFunc(slices.Clone(acks), func(a persist.Ack) bool {
		return l.CheckAcked(clientID, []persist.Ack{a}) != nil
	})
	switch {
	case s.bug("lax Acked"): // leaves out what is bad
		if !okID {
			return nil, true, s.kit.Enter(s.ctx(ctx), "Acked")
		}
		return good, false, nil
	case s.bug("lax ack topic") && okID: // checks ack IDs only
		return slices.DeleteFunc(slices.Clone(acks), func(a persist.Ack) bool {
			idOK := l.CheckAcked(clientID, []persist.Ack{{ID: a.ID, Topic: "t"}}) == nil
			return idOK && l.CheckAcked(clientID, []persist.Ack{a}) != nil
		}), false, nil
	case s.bug("partial ack") && okID: // writes what is good, then refuses
		s.mu.Lock()
		s.ack(clientID, good)
		s.mu.Unlock()
	}
	return acks, false, nil
}

// faultFetch runs the bugs about FetchOffline's input.
func (s *Store) faultFetch(ctx context.Context, clientID, filter string, opt persist.Fetch) (_ persist.Fetch, done bool, _ []*persist.Message, _ error) {
	l := s.kit.Limits()
	if s.bugs == nil || l.CheckFetch(clientID, filter, opt) == nil {
		return opt, false, nil, nil
	}
	clamped := opt
	clamped.Limit, clamped.Since, clamped.Lease = max(opt.Limit, 0), max(opt.Since, 0), max(opt.Lease, 0)
	switch {
	case s.bug("lax FetchOffline"): // an empty result
		return opt, true, nil, s.kit.Enter(s.ctx(ctx), "FetchOffline")
	case s.bug("lax fetch options"): // negative options count as 0
		return clamped, false, nil, nil
	case s.bug("claim invalid fetch") && opt.Mode == persist.Queue && l.CheckFetch(clientID, filter, clamped) == nil:
		// Claims, then refuses.
		if _, err := s.FetchOffline(ctx, clientID, filter, clamped); err != nil {
			return opt, true, nil, err
		}
	}
	return opt, false, nil, nil
}

// faultRetain runs the bugs about Retain's input.
func (s *Store) faultRetain(ctx context.Context, m *persist.Message) (done bool, err error) {
	l := s.kit.Limits()
	if s.bugs == nil || l.CheckRetain(m) == nil {
		return false, nil
	}
	switch {
	case s.bug("lax Retain"): // ignores it
		return true, s.kit.Enter(s.ctx(ctx), "Retain")
	case s.bug("retain before check") && m != nil && topic.ValidateName(m.Topic) == nil: // writes, then refuses
		s.mu.Lock()
		s.retain(m)
		s.mu.Unlock()
	}
	return false, nil
}

// faultLookup runs the bugs about a lookup's argument (a client ID, or
// Retained's filter).
func (s *Store) faultLookup(op, arg string) (done bool, err error) {
	if s.bugs == nil || !s.bug("lax "+op) {
		return false, nil
	}
	l := s.kit.Limits()
	switch op {
	case "Client":
		if l.CheckClientID(arg) != nil {
			return true, s.kit.Error(op, persist.ErrNotFound, fmt.Sprintf("client %q", arg), nil)
		}
	case "Subscriptions":
		return l.CheckClientID(arg) != nil, nil
	case "Retained":
		return l.CheckFilter(arg) != nil, nil
	}
	return false, nil
}

// faultQuery changes a prepared read as a bug does.
func (s *Store) faultQuery(q *storekit.Query) {
	if s.bug("ignore since") {
		q.Since = time.Time{}
	}
}

// firstPerFilter returns subs with the first subscription of each filter
// (the wrong one: the last counts).
func firstPerFilter(subs []persist.Subscription) []persist.Subscription {
	seen := map[string]bool{}
	var out []persist.Subscription
	for _, x := range subs {
		if !seen[x.Filter] {
			seen[x.Filter] = true
			out = append(out, x)
		}
	}
	return out
}

// matchBug reports whether a bug changes how filters match or what a read
// leaves out, so that Query.Finish does not apply.
func (s *Store) matchBug() bool {
	return s.bug("hash matches dollar") || s.bug("like") || s.bug("return expired") || s.bug("collation order")
}

// match is topic.Match, or what a bug makes of it.
func (s *Store) match(filter, name string) bool {
	if s.bug("hash matches dollar") && filter == "#" {
		return true
	}
	if s.bug("like") {
		if f, ok := strings.CutSuffix(filter, "/#"); ok {
			return name == f || strings.HasPrefix(name, f)
		}
	}
	return topic.Match(filter, name)
}

// keep is Query.Keep as a bug makes it.
func (s *Store) keep(q *storekit.Query, m *persist.Message) bool {
	return s.match(q.Match, m.Topic) && (!m.Expired(q.Now) || s.bug("return expired")) &&
		(q.Since.IsZero() || !m.Time.Before(q.Since))
}

// finish is q.Finish, or what a bug makes of it.
func (s *Store) finish(q *storekit.Query, msgs []*persist.Message) []*persist.Message {
	if !s.matchBug() {
		return q.Finish(msgs)
	}
	out := slices.DeleteFunc(msgs, func(m *persist.Message) bool { return !s.keep(q, m) })
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	if q.Full(len(out)) {
		out = out[:q.Fetch.Limit]
	}
	return out
}

// finishRetained is q.FinishRetained, or what a bug makes of it.
func (s *Store) finishRetained(q *storekit.Query, msgs []*persist.Message) []*persist.Message {
	if !s.matchBug() {
		return q.FinishRetained(msgs)
	}
	out := slices.DeleteFunc(msgs, func(m *persist.Message) bool {
		return !s.match(q.Match, m.Topic) || m.Expired(q.Now) && !s.bug("return expired")
	})
	slices.SortFunc(out, func(a, b *persist.Message) int {
		if s.bug("collation order") {
			return compareFold(a.Topic, b.Topic)
		}
		return strings.Compare(a.Topic, b.Topic)
	})
	return out
}

// compareFold compares as a case-insensitive collation does.
func compareFold(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) }
