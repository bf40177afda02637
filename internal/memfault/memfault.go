// Package memfault switches on deliberate contract violations ("bugs") of
// a memstore.Store, so that the persisttest suite is seen to fail on a
// store with each bug, in the cases meant to catch it (the suite's
// mutation tests).
//
// The switches stay out of memstore's public API: a Store keeps its bugs
// in an unexported field that only this package reaches, through Of, which
// package memstore sets when it is loaded. Only tests in this module use
// it; a Store no test touched has no bug.
package memfault

// Bugs is the set of bugs switched on for one store, by name (such as
// "partial batch"). A nil Bugs has none.
type Bugs map[string]bool

// Has reports whether bug is switched on.
func (b Bugs) Has(bug string) bool { return b[bug] }

// Of returns where store keeps its bugs, or nil when store is not a
// *memstore.Store. Package memstore sets it.
var Of func(store any) *Bugs

// Set switches bugs on for store, a *memstore.Store that is not in use
// yet. It panics for any other store.
func Set(store any, bugs ...string) {
	p := of(store)
	if p == nil {
		panic("memfault: not a *memstore.Store")
	}
	if *p == nil {
		*p = Bugs{}
	}
	for _, b := range bugs {
		(*p)[b] = true
	}
}

// Has reports whether bug is switched on for store (false for a store
// that is not a *memstore.Store).
func Has(store any, bug string) bool {
	p := of(store)
	return p != nil && p.Has(bug)
}

func of(store any) *Bugs {
	if Of == nil {
		return nil
	}
	return Of(store)
}
