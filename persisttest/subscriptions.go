package persisttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

func (s *suite) testSubscriptions(t *testing.T) {
	t.Run("AddUpdateRemove", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		id := s.uniq("subscriber")
		subscribe(t, st, id, []persist.Subscription{
			{Filter: "x/+", QoS: 2},
			{Filter: "a/b", QoS: 1},
			{Filter: "c/#", QoS: 0},
		}, nil)
		checkSubs(t, "after adding three", sl, id, []persist.Subscription{
			{Filter: "a/b", QoS: 1}, {Filter: "c/#", QoS: 0}, {Filter: "x/+", QoS: 2},
		})
		subscribe(t, st, id, []persist.Subscription{{Filter: "a/b", QoS: 2}}, nil)
		checkSubs(t, "after updating the QoS of a/b", sl, id, []persist.Subscription{
			{Filter: "a/b", QoS: 2}, {Filter: "c/#", QoS: 0}, {Filter: "x/+", QoS: 2},
		})
		subscribe(t, st, id, nil, []string{"x/+", "never/subscribed"})
		checkSubs(t, "after removing x/+ (and a filter never subscribed)", sl, id, []persist.Subscription{
			{Filter: "a/b", QoS: 2}, {Filter: "c/#", QoS: 0},
		})
		subscribe(t, st, id, []persist.Subscription{{Filter: "d", QoS: 1}}, []string{"a/b"})
		checkSubs(t, "after adding d and removing a/b in one call", sl, id, []persist.Subscription{
			{Filter: "c/#", QoS: 0}, {Filter: "d", QoS: 1},
		})
		subscribe(t, st, id, nil, nil)
		checkSubs(t, "after an empty call", sl, id, []persist.Subscription{
			{Filter: "c/#", QoS: 0}, {Filter: "d", QoS: 1},
		})
		subscribe(t, st, id, nil, []string{"c/#", "d"})
		checkSubs(t, "after removing all", sl, id, nil)
	})
	t.Run("SameFilterTwiceInOneCall", func(t *testing.T) {
		// As a SUBSCRIBE packet with a filter twice: handled as two
		// SUBSCRIBEs in order, so the last one counts [MQTT-3.8.4-6].
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		id := s.uniq("subscriber")
		subscribe(t, st, id, []persist.Subscription{{Filter: "dup/t", QoS: 0}, {Filter: "other", QoS: 1}, {Filter: "dup/t", QoS: 2, NoLocal: true}}, nil)
		checkSubs(t, "after subscribing to dup/t twice in one call", sl, id, []persist.Subscription{{Filter: "dup/t", QoS: 2, NoLocal: true}, {Filter: "other", QoS: 1}})
	})
	t.Run("Options", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		id := s.uniq("subscriber")
		subs := []persist.Subscription{
			{Filter: "opt/all", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, Identifier: 268435455},
			{Filter: "opt/none", QoS: 0},
			{Filter: "opt/some", QoS: 1, RetainHandling: 1, Identifier: 1},
		}
		subscribe(t, st, id, subs, nil)
		checkSubs(t, "MQTT 5 options", sl, id, subs)
		// Updating a subscription replaces its options.
		upd := []persist.Subscription{{Filter: "opt/all", QoS: 0}}
		subscribe(t, st, id, upd, nil)
		checkSubs(t, "after clearing the options of opt/all", sl, id, []persist.Subscription{upd[0], subs[1], subs[2]})
	})
	t.Run("Shared", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		id := s.uniq("subscriber")
		subs := []persist.Subscription{
			{Filter: "$share/g/a/b", QoS: 1},
			{Filter: "$share/h/a/b", QoS: 2},
			{Filter: "a/b", QoS: 0},
		}
		subscribe(t, st, id, subs, nil)
		checkSubs(t, "a shared filter is stored as given, apart from the plain one", sl, id, subs)
		subscribe(t, st, id, nil, []string{"$share/g/a/b"})
		checkSubs(t, "after removing $share/g/a/b", sl, id, subs[1:])
	})
	t.Run("AwkwardFilters", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		subscribe(t, st, "control", []persist.Subscription{{Filter: "control/#", QoS: 1}}, nil)
		id := s.uniq("subscriber")
		var subs []persist.Subscription
		for i, a := range awkward {
			subs = append(subs, persist.Subscription{Filter: a.value, QoS: byte(i % 3)})
		}
		for _, f := range []string{"+", "#", "$SYS/#", "+/+", "a/+/#", "传感器/+", "$share/g'; --/a"} {
			subs = append(subs, persist.Subscription{Filter: f, QoS: 1})
		}
		subscribe(t, st, id, subs, nil)
		want := sortedSubs(subs)
		checkSubs(t, "awkward filters, ordered byte-wise", sl, id, want)
		checkSubs(t, "control client after the injection attempts", sl, "control", []persist.Subscription{{Filter: "control/#", QoS: 1}})
		// Remove every other one, by its exact filter.
		var removed []string
		var kept []persist.Subscription
		for i, sub := range want {
			if i%2 == 0 {
				removed = append(removed, sub.Filter)
			} else {
				kept = append(kept, sub)
			}
		}
		subscribe(t, st, id, nil, removed)
		checkSubs(t, "after removing every other awkward filter", sl, id, kept)
	})
	t.Run("Order", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		id := s.uniq("subscriber")
		var subs []persist.Subscription
		for _, f := range []string{"b", "B", "a", "A/x", "_", "~", "é", "Z", "a/b", "a b", "a-b", "10", "9", "$SYS/#", "#"} {
			subs = append(subs, persist.Subscription{Filter: f, QoS: 1})
		}
		subscribe(t, st, id, subs, nil)
		checkSubs(t, "ordered by filter byte-wise (as Go compares strings), not by a collation", sl, id, sortedSubs(subs))
	})
	t.Run("PerClient", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		ids := []string{"dev", "Dev", "dev ", " dev", "de"}
		for i, id := range ids {
			subscribe(t, st, id, []persist.Subscription{{Filter: fmt.Sprintf("only/%d", i), QoS: 1}}, nil)
		}
		for i, id := range ids {
			checkSubs(t, "client IDs differing in case or spaces are different clients", sl, id,
				[]persist.Subscription{{Filter: fmt.Sprintf("only/%d", i), QoS: 1}})
		}
		checkSubs(t, "unknown client", sl, "nobody", nil)
	})
	t.Run("AwkwardClientIDs", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		sl := s.subLookup(t, st)
		for i, a := range awkward {
			subscribe(t, st, a.value, []persist.Subscription{{Filter: fmt.Sprintf("cid/%d", i), QoS: 1}}, nil)
		}
		for i, a := range awkward {
			checkSubs(t, "client "+a.name, sl, a.value, []persist.Subscription{{Filter: fmt.Sprintf("cid/%d", i), QoS: 1}})
		}
	})
}

func sortedSubs(subs []persist.Subscription) []persist.Subscription {
	out := slices.Clone(subs)
	slices.SortFunc(out, func(a, b persist.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return out
}

// checkSubs checks a client's stored subscriptions, in order, ignoring
// History (a request, not state).
func checkSubs(t *testing.T, what string, sl persist.SubscriptionLookup, clientID string, want []persist.Subscription) {
	t.Helper()
	got, err := sl.Subscriptions(t.Context(), clientID)
	if err != nil {
		t.Errorf("%s: Subscriptions(%q): %v", what, clientID, err)
		return
	}
	norm := func(subs []persist.Subscription) []persist.Subscription {
		out := slices.Clone(subs)
		for i := range out {
			out[i].History = false
		}
		return out
	}
	if g, w := norm(got), norm(want); !slices.Equal(g, w) {
		t.Errorf("%s: Subscriptions(%q):\n got %d %+v\nwant %d %+v", what, clientID, len(g), g, len(w), w)
	}
}
