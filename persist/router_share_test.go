package persist_test

import (
	"testing"

	"github.com/mqttpersist/mqttpersist/memstore"
	"github.com/mqttpersist/mqttpersist/persist"
)

// Without a Claimer a Router keeps no group: a shared filter's fanout
// fetch asks no store (a group has no position to read) and Subscribed
// stores the member's subscription only.
func TestRouterSharedWithoutClaims(t *testing.T) {
	rec := newRec("rec")
	rec.hold = []*persist.Message{{ID: persist.NewID(), Topic: "g/t", QoS: 1}}
	r, err := persist.NewRouter(persist.Rule{Store: rec})
	if err != nil {
		t.Fatal(err)
	}
	if r.SharedGroups() {
		t.Fatal("SharedGroups over a store that is no Claimer: true")
	}
	ctx := t.Context()
	if err := r.Subscribed(ctx, "m1", []persist.Subscription{{Filter: "$share/w/g/#", QoS: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := r.FetchOffline(ctx, "m1", "$share/w/g/#", persist.Fetch{})
	if err != nil || len(got) != 0 {
		t.Fatalf("fanout fetch of a shared filter: %d messages, %v; want none", len(got), err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.fetches) != 0 {
		t.Errorf("the store was asked %+v", rec.fetches)
	}
	if len(rec.subs) != 1 || len(rec.subs[0]) != 1 || rec.subs[0][0].Filter != "$share/w/g/#" {
		t.Errorf("Subscribed calls %+v, want the member's alone", rec.subs)
	}
}

// With a Claimer behind a pipeline, a Router keeps groups: the group's
// subscription is stored under its shared filter, to the inner filter,
// once (a member joining later keeps its start); a queue fetch of a shared
// filter still claims for the member.
func TestRouterSharedGroupPosition(t *testing.T) {
	st := memstore.New()
	p, err := persist.NewPipeline(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := persist.NewRouter(
		persist.Rule{Filter: "q/#", Store: p, Mode: persist.Queue},
		persist.Rule{Filter: "g/#", Store: p},
	)
	if err != nil {
		t.Fatal(err)
	}
	if !r.SharedGroups() {
		t.Fatal("SharedGroups over a memstore through a Pipeline: false")
	}
	ctx := t.Context()
	const group = "$share/w/g/#"
	if err := r.Subscribed(ctx, "m1", []persist.Subscription{{Filter: group, QoS: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	first, err := st.Subscriptions(ctx, group)
	if err != nil || len(first) != 1 || first[0].Filter != "g/#" {
		t.Fatalf("the group's subscriptions: %+v, %v; want one to g/#", first, err)
	}
	m := &persist.Message{Topic: "g/t", QoS: 1, Payload: []byte("x")}
	if err := r.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := r.Subscribed(ctx, "m2", []persist.Subscription{{Filter: group, QoS: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := r.FetchOffline(ctx, "m2", group, persist.Fetch{})
	if err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("m2 (joined after the publish) fetches %d, %v; want the group's message", len(got), err)
	}
	if got, _ := r.FetchOffline(ctx, "m1", group, persist.Fetch{}); len(got) != 0 {
		t.Errorf("m1 while m2 holds the claim: %d messages", len(got))
	}
	q := &persist.Message{Topic: "q/t", QoS: 1, Payload: []byte("job"), Mode: persist.Queue}
	if err := r.Publish(ctx, q); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.FetchOffline(ctx, "m1", "$share/w/q/#", persist.Fetch{}); len(got) != 1 || got[0].ID != q.ID {
		t.Errorf("m1's queue fetch of a shared filter: %d messages, want the job", len(got))
	}
}
