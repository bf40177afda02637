package topic

import (
	"strings"
	"sync"
)

// Index maps subscription filters to values and finds every (filter, value) pair matching a topic name without scanning all filters; it is safe for concurrent use.
type Index[V comparable] struct {
	mu   sync.RWMutex
	root node[V]
	n    int
}

// entry is one stored (filter, value) pair; filter is the filter as added, "$share/..." included.
type entry[V comparable] struct {
	filter string
	v      V
}

// node is one level of the trie.
type node[V comparable] struct {
	kids []child[V]          // children for literal levels while there are few (a map costs hundreds of bytes)
	lits map[string]*node[V] // children for literal levels once there are many; kids is then nil
	plus *node[V]            // child for a '+' level
	end  set[V]              // filters ending at this node
	hash set[V]              // filters whose last level, '#', follows this node
}

// child is a literal level and its node.
type child[V comparable] struct {
	level string
	n     *node[V]
}

// smallKids is the number of literal children a node keeps in a slice before it switches to a map.
const smallKids = 8

// lit returns the child for literal level l, or nil.
func (n *node[V]) lit(l string) *node[V] {
	if n.lits != nil {
		return n.lits[l]
	}
	for i := range n.kids {
		if n.kids[i].level == l {
			return n.kids[i].n
		}
	}
	return nil
}

// addLit adds child c for literal level l, which n does not have yet.
func (n *node[V]) addLit(l string, c *node[V]) {
	if n.lits != nil {
		n.lits[l] = c
		return
	}
	n.kids = append(n.kids, child[V]{l, c})
	if len(n.kids) > smallKids {
		n.lits = make(map[string]*node[V], len(n.kids))
		for _, k := range n.kids {
			n.lits[k.level] = k.n
		}
		n.kids = nil
	}
}

// delLit removes the child for literal level l.
func (n *node[V]) delLit(l string) {
	if n.lits != nil {
		delete(n.lits, l)
		return
	}
	for i := range n.kids {
		if n.kids[i].level == l {
			last := len(n.kids) - 1
			n.kids[i] = n.kids[last]
			n.kids[last] = child[V]{}
			n.kids = n.kids[:last]
			if last == 0 {
				n.kids = nil
			}
			return
		}
	}
}

// empty reports whether n holds no filters and has no children.
func (n *node[V]) empty() bool {
	return len(n.kids) == 0 && len(n.lits) == 0 && n.plus == nil && len(n.end.list) == 0 && len(n.hash.list) == 0
}

// NewIndex returns an empty Index.
func NewIndex[V comparable]() *Index[V] {
	return &Index[V]{}
}

// Add stores v under filter, indexing a shared filter under its inner filter; adding the same (filter, v) again changes nothing, and an invalid filter returns an *Error.
func (ix *Index[V]) Add(filter string, v V) error {
	f, ok := body(filter)
	if !ok {
		return ValidateFilter(filter)
	}
	e := entry[V]{filter, v}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := &ix.root
	for {
		l, rest, more := next(f)
		if l == "#" {
			if n.hash.add(e) {
				ix.n++
			}
			return nil
		}
		if l == "+" {
			if n.plus == nil {
				n.plus = new(node[V])
			}
			n = n.plus
		} else {
			c := n.lit(l)
			if c == nil {
				c = new(node[V])
				n.addLit(strings.Clone(l), c)
			}
			n = c
		}
		if !more {
			if n.end.add(e) {
				ix.n++
			}
			return nil
		}
		f = rest
	}
}

// Remove deletes the pair (filter, v) and reports whether it was stored.
func (ix *Index[V]) Remove(filter string, v V) bool {
	f, ok := body(filter)
	if !ok {
		return false
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !ix.root.remove(f, entry[V]{filter, v}) {
		return false
	}
	ix.n--
	return true
}

// remove deletes e stored under the remaining levels f below n and prunes children left empty.
func (n *node[V]) remove(f string, e entry[V]) bool {
	l, rest, more := next(f)
	if l == "#" {
		return n.hash.remove(e)
	}
	var c *node[V]
	if l == "+" {
		c = n.plus
	} else {
		c = n.lit(l)
	}
	if c == nil {
		return false
	}
	var removed bool
	if more {
		removed = c.remove(rest, e)
	} else {
		removed = c.end.remove(e)
	}
	if removed && c.empty() {
		if l == "+" {
			n.plus = nil
		} else {
			n.delLit(l)
		}
	}
	return removed
}

// Len returns the number of stored (filter, value) pairs.
func (ix *Index[V]) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.n
}

// Match returns the value of every stored pair whose filter matches name, once per pair, in no particular order; it returns nil for an invalid name.
func (ix *Index[V]) Match(name string) []V {
	var out []V
	ix.Each(name, func(_ string, v V) bool {
		if out == nil {
			out = make([]V, 0, 8) // one allocation for the usual handful of matches
		}
		out = append(out, v)
		return true
	})
	return out
}

// Each calls fn for every stored pair whose filter matches name until fn returns false; fn runs under the read lock and must not call Add or Remove.
func (ix *Index[V]) Each(name string, fn func(filter string, v V) bool) {
	if !check(name, false).ok() {
		return
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ix.root.each(name, false, name[0] == '$', fn)
}

// each visits the pairs below n that match the rest of a name; done means no levels are left, and dollar means n is the root and the name starts with '$', which wildcards there must not match [MQTT-4.7.2-1].
func (n *node[V]) each(rest string, done, dollar bool, fn func(string, V) bool) bool {
	if !dollar && !n.hash.each(fn) {
		return false // '#' also matches the parent level [MQTT-4.7.1-2]
	}
	if done {
		return n.end.each(fn)
	}
	l, rest, more := next(rest)
	if c := n.lit(l); c != nil && !c.each(rest, !more, false, fn) {
		return false
	}
	if n.plus != nil && !dollar && !n.plus.each(rest, !more, false, fn) {
		return false
	}
	return true
}

// set is a set of entries that keeps a slice for fast iteration and adds a map position index once it grows.
type set[V comparable] struct {
	list []entry[V]
	pos  map[entry[V]]int
}

// smallSet is the size up to which set finds entries by linear search.
const smallSet = 8

// add inserts e and reports whether it was new.
func (s *set[V]) add(e entry[V]) bool {
	if s.pos != nil {
		if _, ok := s.pos[e]; ok {
			return false
		}
		s.pos[e] = len(s.list)
		s.list = append(s.list, e)
		return true
	}
	for _, x := range s.list {
		if x == e {
			return false
		}
	}
	s.list = append(s.list, e)
	if len(s.list) > smallSet {
		s.pos = make(map[entry[V]]int, len(s.list))
		for i, x := range s.list {
			s.pos[x] = i
		}
	}
	return true
}

// remove deletes e and reports whether it was present.
func (s *set[V]) remove(e entry[V]) bool {
	i := -1
	if s.pos != nil {
		j, ok := s.pos[e]
		if !ok {
			return false
		}
		i = j
		delete(s.pos, e)
	} else {
		for j, x := range s.list {
			if x == e {
				i = j
				break
			}
		}
		if i < 0 {
			return false
		}
	}
	last := len(s.list) - 1
	if i != last {
		s.list[i] = s.list[last]
		if s.pos != nil {
			s.pos[s.list[i]] = i
		}
	}
	s.list[last] = entry[V]{}
	s.list = s.list[:last]
	if len(s.list) == 0 {
		s.list, s.pos = nil, nil
	}
	return true
}

// each calls fn for every entry until fn returns false, and reports whether it ran to the end.
func (s *set[V]) each(fn func(string, V) bool) bool {
	for _, e := range s.list {
		if !fn(e.filter, e.v) {
			return false
		}
	}
	return true
}
