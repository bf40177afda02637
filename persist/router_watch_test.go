package persist_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

// watchStore is a store whose watches record the filters added and
// removed, and hand out notices the test sends.
type watchStore struct {
	*recStore
	mu      sync.Mutex
	fns     []func(persist.Notice)
	added   []string
	removed []string
	closed  int
}

func (s *watchStore) Watch(_ context.Context, fn func(persist.Notice)) (persist.Watch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fns = append(s.fns, fn)
	return &storeWatch{s}, nil
}

func (s *watchStore) notify(n persist.Notice) {
	s.mu.Lock()
	fns := slices.Clone(s.fns)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(n)
	}
}

type storeWatch struct{ s *watchStore }

func (w *storeWatch) Add(_ context.Context, fs ...string) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.added = append(w.s.added, fs...)
	return nil
}
func (w *storeWatch) Remove(_ context.Context, fs ...string) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.removed = append(w.s.removed, fs...)
	return nil
}
func (w *storeWatch) Close() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.closed++
	return nil
}

// A Router watches each store its fetches read, with the filters that
// store's rules overlap, and passes the notices on.
func TestRouterWatch(t *testing.T) {
	a := &watchStore{recStore: newRec("a")}
	b := &watchStore{recStore: newRec("b")}
	plain := newRec("plain") // no Watcher
	writeOnly := &watchStore{recStore: newRec("w")}
	r := mustRouter(t,
		persist.Rule{Filter: "q/#", Store: a, Mode: persist.Queue},
		persist.Rule{Filter: "s/#", Store: b},
		persist.Rule{Filter: "p/#", Store: plain},
		persist.Rule{Filter: "#", Store: writeOnly, Events: persist.OnPublish},
	)
	var mu sync.Mutex
	var got []persist.Notice
	w, err := r.Watch(t.Context(), func(n persist.Notice) {
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(t.Context(), "q/1", "s/+", "$share/g/s/x", "p/1", "#"); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(t.Context(), "s/+"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"q/1", "#"}; !slices.Equal(a.added, want) {
		t.Errorf("store a watches %q, want %q", a.added, want)
	}
	if want := []string{"s/+", "$share/g/s/x", "#"}; !slices.Equal(b.added, want) || !slices.Equal(b.removed, []string{"s/+"}) {
		t.Errorf("store b watches %q and removed %q, want %q and [s/+]", b.added, b.removed, want)
	}
	if len(writeOnly.fns) != 0 {
		t.Errorf("a store no rule fetches from was watched")
	}
	a.notify(persist.Notice{Topic: "q/1", Node: "n2"})
	b.notify(persist.Notice{Client: "c", Node: "n3"})
	mu.Lock()
	if want := []persist.Notice{{Topic: "q/1", Node: "n2"}, {Client: "c", Node: "n3"}}; !slices.Equal(got, want) {
		t.Errorf("notices %v, want %v", got, want)
	}
	mu.Unlock()
	if err := w.Add(t.Context(), "ok", "a/#/b"); !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("Add of an invalid filter = %v, want ErrInvalid", err)
	}
	if len(a.added) != 2 {
		t.Errorf("an Add with an invalid filter added %q", a.added[2:])
	}
	if err := w.Close(); err != nil || a.closed != 1 || b.closed != 1 {
		t.Errorf("Close = %v; closed a %d, b %d times", err, a.closed, b.closed)
	}
}
