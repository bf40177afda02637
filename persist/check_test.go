package persist_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

// checkStore records, per verb, whether the context of each call says its
// input was checked for the store's limits.
type checkStore struct {
	persist.Store
	limits persist.Limits
	mu     sync.Mutex
	calls  map[string][]bool
}

func (s *checkStore) Limits() persist.Limits { return s.limits }

func (s *checkStore) saw(ctx context.Context, verb string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string][]bool{}
	}
	s.calls[verb] = append(s.calls[verb], persist.CheckedFor(ctx, s.limits))
}

func (s *checkStore) Connected(ctx context.Context, c *persist.Client) error {
	s.saw(ctx, "Connected")
	return nil
}
func (s *checkStore) Subscribed(ctx context.Context, _ string, _ []persist.Subscription, _ []string) error {
	s.saw(ctx, "Subscribed")
	return nil
}
func (s *checkStore) Publish(ctx context.Context, _ ...*persist.Message) error {
	s.saw(ctx, "Publish")
	return nil
}
func (s *checkStore) Acked(ctx context.Context, _ string, _ ...persist.Ack) error {
	s.saw(ctx, "Acked")
	return nil
}
func (s *checkStore) Retain(ctx context.Context, _ *persist.Message) error {
	s.saw(ctx, "Retain")
	return nil
}
func (s *checkStore) FetchOffline(ctx context.Context, _, _ string, _ persist.Fetch) ([]*persist.Message, error) {
	s.saw(ctx, "FetchOffline")
	return nil, nil
}

// callAll makes one call of each verb with valid input.
func callAll(t *testing.T, st persist.Store) {
	t.Helper()
	ctx := t.Context()
	for _, err := range []error{
		st.Connected(ctx, &persist.Client{ID: "c", Online: true}),
		st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "a/#", QoS: 1}}, []string{"b"}),
		st.Publish(ctx, &persist.Message{Topic: "a/b", Payload: []byte("x"), QoS: 1}),
		st.Acked(ctx, "c", persist.Ack{ID: persist.NewID(), Topic: "a/b"}),
		st.Retain(ctx, &persist.Message{Topic: "a/b", Payload: []byte("r")}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.FetchOffline(ctx, "c", "a/#", persist.Fetch{}); err != nil {
		t.Fatal(err)
	}
}

// A Router or Pipeline checks a call's input once and tells the store so,
// for the limits the store declares; a store behind a wrapper that hides
// its limits is told nothing and checks by itself.
func TestCheckedOnce(t *testing.T) {
	verbs := []string{"Connected", "Subscribed", "Publish", "Acked", "Retain", "FetchOffline"}
	for _, tc := range []struct {
		name string
		wrap func(persist.Store) persist.Store
		want bool
	}{
		{"store", func(s persist.Store) persist.Store { return s }, true},
		{"store hiding its limits", func(s persist.Store) persist.Store { return struct{ persist.Store }{s} }, false},
	} {
		for _, mode := range []persist.WriteMode{persist.Durable, persist.Async} {
			t.Run(tc.name+"/"+mode.String(), func(t *testing.T) {
				st := &checkStore{limits: persist.Limits{Topic: 100, ClientID: 23}}
				p, err := persist.NewPipeline(tc.wrap(st), &persist.PipelineOptions{Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				r := mustRouter(t, persist.Rule{Store: p})
				callAll(t, r)
				if err := p.Close(); err != nil { // an async pipeline writes what it queued
					t.Fatal(err)
				}
				for _, v := range verbs {
					st.mu.Lock()
					got := st.calls[v]
					st.mu.Unlock()
					if len(got) != 1 || got[0] != tc.want {
						t.Errorf("%s: store calls told checked = %v, want one call told %v", v, got, tc.want)
					}
				}
			})
		}
	}
}

// The Router checks input for the strictest of its stores' limits; input
// that only one of its stores cannot keep is left to the pipelines, which
// check it for their own store.
func TestRouterLimits(t *testing.T) {
	strict := &checkStore{limits: persist.Limits{Topic: 10}}
	loose := &checkStore{}
	r := mustRouter(t, persist.Rule{Filter: "short/#", Store: strict}, persist.Rule{Store: loose})
	if got := r.Limits(); got.Topic != 10 {
		t.Fatalf("Router.Limits() = %+v, want Topic 10", got)
	}
	long := "long/" + strings.Repeat("x", 20)
	if err := r.Publish(t.Context(), &persist.Message{Topic: long, QoS: 1}); err != nil {
		t.Fatalf("Publish to a topic only the loose store gets: %v", err)
	}
	// The Router left the check to the pipeline of the loose store.
	if got := loose.calls["Publish"]; len(got) != 1 || !got[0] {
		t.Errorf("loose store calls told checked = %v, want one call told true", got)
	}
	if got := strict.calls["Publish"]; len(got) != 0 {
		t.Errorf("strict store got %d Publish calls, want none", len(got))
	}
	err := r.Publish(t.Context(), &persist.Message{Topic: "a/+", QoS: 1})
	var pe *persist.Error
	if !errors.Is(err, persist.ErrInvalid) || !errors.As(err, &pe) || pe.Store != "router" || pe.Op != "Publish" {
		t.Fatalf("Publish to a/+ = %v, want a router Publish error matching ErrInvalid", err)
	}
	if !strings.HasPrefix(err.Error(), `router: Publish message 0 (topic "a/+"): invalid name`) {
		t.Errorf("error text %q", err)
	}
}
