package storekit

import (
	"context"
	"io"
	"strconv"
	"sync"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// Watch enters op, a watch's Add or Remove, and checks filters (see
// persist.Limits.CheckFilter), naming the first invalid one by its place.
// Remove passes none: a filter that is not watched, an invalid one
// included, is left alone.
func (k *Kit) Watch(ctx context.Context, op string, filters []string) error {
	if err := k.Enter(ctx, op); err != nil {
		return err
	}
	for i, f := range filters {
		if err := k.limits.CheckFilter(f); err != nil {
			pe := *err.(*persist.Error)
			if pe.What == "" {
				pe.What = "filter " + strconv.Itoa(i)
			}
			return k.own(op, &pe)
		}
	}
	return nil
}

// Watches is the set of a store's open watches, which the store's Close
// closes. The zero value is ready.
type Watches struct {
	mu   sync.Mutex
	open map[io.Closer]struct{}
}

// Add records an open watch; it reports false once k is closed (the
// store's Close has begun: the watch is not to start).
func (ws *Watches) Add(k *Kit, w io.Closer) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if k.Closed() {
		return false
	}
	if ws.open == nil {
		ws.open = map[io.Closer]struct{}{}
	}
	ws.open[w] = struct{}{}
	return true
}

// Drop forgets a watch (its Close).
func (ws *Watches) Drop(w io.Closer) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.open, w)
}

// CloseAll closes every open watch (the store's Close).
func (ws *Watches) CloseAll() {
	ws.mu.Lock()
	open := make([]io.Closer, 0, len(ws.open))
	for w := range ws.open {
		open = append(open, w)
	}
	ws.mu.Unlock()
	for _, w := range open {
		_ = w.Close()
	}
}

// Filters is what a watch watches: each filter counted (a filter added
// twice is watched until it is removed twice), a shared filter
// ($share/<group>/<filter>) as its inner filter, and an index of them to
// match topics against. The zero value is ready. Add and Remove need the
// watch's own lock; Matches and Each may run beside them.
type Filters struct {
	counts map[string]int
	match  topic.Index[struct{}]
}

// Inner returns a filter without its $share/<group>/ prefix.
func Inner(filter string) string {
	if _, in, ok := topic.Shared(filter); ok {
		return in
	}
	return filter
}

// Add counts filters and returns the (inner) filters watched now that
// were not before, once each, in order.
func (f *Filters) Add(filters ...string) []string {
	if f.counts == nil {
		f.counts = map[string]int{}
	}
	var added []string
	for _, x := range filters {
		x = Inner(x)
		if f.counts[x]++; f.counts[x] == 1 {
			_ = f.match.Add(x, struct{}{})
			added = append(added, x)
		}
	}
	return added
}

// Remove takes one count of each watched filter of filters and returns
// the (inner) filters no longer watched; a filter that is not watched is
// left alone.
func (f *Filters) Remove(filters ...string) []string {
	var gone []string
	for _, x := range filters {
		x = Inner(x)
		n, ok := f.counts[x]
		if !ok {
			continue
		}
		if n > 1 {
			f.counts[x] = n - 1
			continue
		}
		delete(f.counts, x)
		f.match.Remove(x, struct{}{})
		gone = append(gone, x)
	}
	return gone
}

// List returns the watched (inner) filters, in no order.
func (f *Filters) List() []string {
	out := make([]string, 0, len(f.counts))
	for x := range f.counts {
		out = append(out, x)
	}
	return out
}

// Matches reports whether a watched filter matches the topic name.
func (f *Filters) Matches(name string) bool {
	found := false
	f.Each(name, func(string) bool {
		found = true
		return false
	})
	return found
}

// Each calls fn with each watched filter that matches the topic name,
// until fn returns false.
func (f *Filters) Each(name string, fn func(filter string) bool) {
	f.match.Each(name, func(x string, _ struct{}) bool { return fn(x) })
}
