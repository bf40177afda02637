package persist

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/mqttpersist/mqttpersist/topic"
)

var _ Watcher = (*Router)(nil)

// Watch watches the stores that FetchOffline reads (those of the rules
// with OnFetch) and implement Watcher, calling fn with their notices; a
// filter is watched in each such store whose rules' filters overlap it
// (a shared filter by its inner filter). With no such store the watch
// hears nothing, and Add and Remove only check their filters.
func (r *Router) Watch(ctx context.Context, fn func(Notice)) (Watch, error) {
	if r.closed.Load() {
		return nil, r.errClosed("Watch")
	}
	w := &routerWatch{r: r}
	for si, p := range r.stores {
		wr, ok := p.Store().(Watcher)
		if !ok {
			continue
		}
		var filters []string
		for _, rt := range r.rules {
			if rt.store == si && rt.events&OnFetch != 0 {
				filters = append(filters, rt.Filter)
			}
		}
		if len(filters) == 0 {
			continue
		}
		sw, err := wr.Watch(ctx, fn)
		if err != nil {
			_ = w.Close()
			return nil, ownErr("router", "Watch", Wrap("", "", nil, err, false))
		}
		w.parts = append(w.parts, watchPart{w: sw, filters: filters})
	}
	return w, nil
}

// routerWatch is a Watch on several stores.
type routerWatch struct {
	r     *Router
	mu    sync.Mutex
	parts []watchPart
}

type watchPart struct {
	w       Watch
	filters []string // the filters of the store's rules with OnFetch
}

// overlapping returns the filters of fs that overlap one of the part's.
func (p *watchPart) overlapping(fs []string) []string {
	var out []string
	for _, f := range fs {
		inner := f
		if _, in, ok := topic.Shared(f); ok {
			inner = in
		}
		for _, rf := range p.filters {
			if topic.Overlap(rf, inner) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

func (w *routerWatch) each(ctx context.Context, op string, filters []string, call func(Watch, context.Context, ...string) error) error {
	for i, f := range filters {
		if err := (Limits{}).CheckFilter(f); err != nil {
			e := ownErr("router", op, err).(*Error)
			e.What = "filter " + strconv.Itoa(i)
			return e
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i := range w.parts {
		if fs := w.parts[i].overlapping(filters); len(fs) > 0 {
			if err := call(w.parts[i].w, ctx, fs...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Add watches filters in the stores whose rules overlap them.
func (w *routerWatch) Add(ctx context.Context, filters ...string) error {
	return w.each(ctx, "Watch.Add", filters, Watch.Add)
}

// Remove stops watching filters.
func (w *routerWatch) Remove(ctx context.Context, filters ...string) error {
	return w.each(ctx, "Watch.Remove", filters, Watch.Remove)
}

// Close ends the watches of every store.
func (w *routerWatch) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, p := range w.parts {
		errs = append(errs, p.w.Close())
	}
	w.parts = nil
	return errors.Join(errs...)
}
