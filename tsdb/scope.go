package tsdb

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Scope evaluates the values of templates for one message at a time: it
// parses the payload once (the first time a template takes a payload
// path) and keeps what it read until the next Reset, so that every
// template matching a message reads the same parse. A Scope is not safe
// for concurrent use; writers take one from GetScope for each call and
// give it back with PutScope.
type Scope struct {
	m     *persist.Message
	when  time.Time // the message's time, or when Reset saw a zero one
	doc   doc
	state int8 // 0 payload not read, 1 read, 2 not JSON
	perr  error
	arena []byte  // unescaped strings and integers
	refs  []int32 // the nodes of $0 values
	res   []result
	point tsdbPoint // the OpenTSDB data point being rendered
}

// result is the evaluation of one Value: one scalar or one node, or a list
// of nodes ($0) in refs[from:to].
type result struct {
	list     bool
	node     int32 // -1: sc holds the value
	sc       Scalar
	from, to int32
}

var scopes = sync.Pool{New: func() any { return new(Scope) }}

// GetScope returns a Scope from a pool.
func GetScope() *Scope { return scopes.Get().(*Scope) }

// PutScope puts s back into the pool; s must not be used afterwards.
func PutScope(s *Scope) {
	if cap(s.arena) > 1<<20 || cap(s.doc.nodes) > 1<<16 {
		return // let a huge payload's buffers go
	}
	// Hold nothing of the message while pooled.
	s.m, s.doc.src = nil, nil
	clear(s.res[:cap(s.res)])
	clear(s.point.tags[:cap(s.point.tags)])
	s.point.metric, s.point.value = nil, nil
	scopes.Put(s)
}

// Reset makes s evaluate templates for m.
func (s *Scope) Reset(m *persist.Message) {
	s.m = m
	s.when = m.Time
	if s.when.IsZero() {
		s.when = time.Now()
	}
	s.state = 0
	s.perr = nil
	s.arena = s.arena[:0]
	s.refs = s.refs[:0]
}

// Message returns the message s evaluates templates for.
func (s *Scope) Message() *persist.Message { return s.m }

// Time returns the message's time ($timestamp): Message.Time, or the
// moment of Reset when the message has none.
func (s *Scope) Time() time.Time { return s.when }

// bytesOf returns the bytes of str without copying them (read only).
func bytesOf(str string) []byte { return unsafe.Slice(unsafe.StringData(str), len(str)) }

// payload parses the payload as JSON once.
func (s *Scope) payload() error {
	switch s.state {
	case 1:
		return nil
	case 2:
		return s.perr
	}
	if err := s.doc.parse(s.m.Payload); err != nil {
		s.state, s.perr = 2, fmt.Errorf("the payload is not JSON: %w", err)
		return s.perr
	}
	s.state = 1
	return nil
}

// eval evaluates vals into s.res and returns the number of points they
// make: the length of their $0 lists (which must agree), or 1 without one.
func (s *Scope) eval(vals []Value) (int, *skipError) {
	if cap(s.res) < len(vals) {
		s.res = make([]result, len(vals))
	}
	s.res = s.res[:len(vals)]
	n, lead := -1, -1
	for j := range vals {
		v := &vals[j]
		r := &s.res[j]
		*r = result{node: -1}
		switch {
		case v.path != nil:
			if err := s.payload(); err != nil {
				return 0, &skipError{reason: NotJSON, where: v.Where, err: err}
			}
			if err := s.walk(v, r); err != nil {
				return 0, err
			}
			if r.list {
				l := int(r.to - r.from)
				switch {
				case n < 0:
					n, lead = l, j
				case l != n:
					return 0, &skipError{reason: Lengths, where: v.Where,
						err: fmt.Errorf("%s gives %d values ($0), %s gives %d: one point per element needs as many of each", v.Text, l, vals[lead].Where, n)}
				}
			}
		case v.ph != phNone:
			r.sc = s.placeholder(v.ph)
		default:
			r.sc = v.fixed
		}
	}
	if n < 0 {
		return 1, nil
	}
	if n == 0 {
		return 0, &skipError{reason: Empty, where: vals[lead].Where, err: fmt.Errorf("%s found an empty array: no point", vals[lead].Text)}
	}
	return n, nil
}

// placeholder returns the value of a message placeholder.
func (s *Scope) placeholder(ph placeholder) Scalar {
	m := s.m
	switch ph {
	case phID:
		return Scalar{Kind: String, Text: bytesOf(m.ID)}
	case phClientID:
		return Scalar{Kind: String, Text: bytesOf(m.From)}
	case phUsername:
		return Scalar{Kind: String, Text: bytesOf(m.Username)}
	case phPeerHost:
		return Scalar{Kind: String, Text: bytesOf(m.PeerHost)}
	case phTopic:
		return Scalar{Kind: String, Text: bytesOf(m.Topic)}
	case phQoS:
		return s.int(int64(m.QoS))
	case phTimestamp:
		return s.int(s.when.UnixNano())
	case phPayload:
		p := m.Payload
		if p == nil {
			p = []byte{}
		}
		return Scalar{Kind: Bytes, Text: p}
	}
	return Scalar{Kind: Null}
}

func (s *Scope) int(v int64) Scalar {
	from := len(s.arena)
	s.arena = strconv.AppendInt(s.arena, v, 10)
	return Scalar{Kind: Int, Text: s.arena[from:len(s.arena):len(s.arena)]}
}

// walk follows v's path from the payload's root into r.
func (s *Scope) walk(v *Value, r *result) *skipError {
	d := &s.doc
	node := int32(0)
	for i, st := range v.path {
		if st.index < 0 { // $0: every element, then the rest of the path from each
			if d.nodes[node].kind != jArray {
				return s.missing(v, i, node, -1)
			}
			r.list, r.from = true, int32(len(s.refs))
			e := node + 1
			for k := range int(d.nodes[node].n) {
				got, fail := s.follow(v.path[i+1:], e)
				if fail >= 0 {
					return s.missing(v, i+1+fail, got, k)
				}
				s.refs = append(s.refs, got)
				e = d.nodes[e].next
			}
			r.to = int32(len(s.refs))
			return nil
		}
		next, fail := s.follow(v.path[i:i+1], node)
		if fail >= 0 {
			return s.missing(v, i, node, -1)
		}
		node = next
	}
	r.node = node
	return nil
}

// follow follows path (without $0) from node; it returns the node reached,
// or the node where step fail (>= 0) found nothing.
func (s *Scope) follow(path []step, node int32) (int32, int) {
	d := &s.doc
	for i, st := range path {
		var next int32 = -1
		switch n := &d.nodes[node]; {
		case st.index > 0 && n.kind == jArray:
			next = d.elem(node, st.index-1)
		case st.index == 0 && n.kind == jObject:
			next = d.member(node, st.key)
		}
		if next < 0 {
			return node, i
		}
		node = next
	}
	return node, -1
}

// missing says which step of v's path found nothing at node (in element
// elem of the $0 array, or -1).
func (s *Scope) missing(v *Value, step int, node int32, elem int) *skipError {
	d := &s.doc
	var at strings.Builder
	// The steps before the failing one, as the template wrote them.
	for i := 0; i < step && i < len(v.path); i++ {
		switch st := v.path[i]; {
		case st.index < 0:
			fmt.Fprintf(&at, "[element %d]", elem+1)
		case st.index > 0:
			fmt.Fprintf(&at, "[$%d]", st.index)
		default:
			if at.Len() > 0 {
				at.WriteByte('.')
			}
			at.WriteString(strconv.Quote(st.key))
		}
	}
	if at.Len() == 0 {
		at.WriteString("the payload")
	}
	n := &d.nodes[node]
	var why string
	switch st := v.path[step]; {
	case st.index < 0 && n.kind != jArray:
		why = fmt.Sprintf("%s is %s, not an array ($0)", at.String(), jkindName(n.kind))
	case st.index > 0 && n.kind != jArray:
		why = fmt.Sprintf("%s is %s, not an array ($%d)", at.String(), jkindName(n.kind), st.index)
	case st.index > 0:
		why = fmt.Sprintf("%s has %d elements, no $%d", at.String(), n.n, st.index)
	case n.kind != jObject:
		why = fmt.Sprintf("%s is %s, not an object with key %q", at.String(), jkindName(n.kind), st.key)
	default:
		why = fmt.Sprintf("%s has no key %q", at.String(), st.key)
	}
	return &skipError{reason: Missing, where: v.Where, err: fmt.Errorf("path %s: %s", v.Text, why)}
}

func jkindName(k jkind) string {
	switch k {
	case jNull:
		return "null"
	case jFalse, jTrue:
		return "a boolean"
	case jNumber:
		return "a number"
	case jString:
		return "a string"
	case jArray:
		return "an array"
	}
	return "an object"
}

// at returns value j of point i of the last eval.
func (s *Scope) at(j, i int) Scalar {
	r := &s.res[j]
	switch {
	case r.list:
		return s.scalar(s.refs[int(r.from)+i])
	case r.node >= 0:
		return s.scalar(r.node)
	}
	return r.sc
}

// scalar returns the value of JSON node i.
func (s *Scope) scalar(i int32) Scalar {
	d := &s.doc
	n := &d.nodes[i]
	switch n.kind {
	case jNull:
		return Scalar{Kind: Null}
	case jTrue, jFalse:
		return Scalar{Kind: Bool, Text: d.text(i)}
	case jNumber:
		return Scalar{Kind: Number, Text: d.text(i)}
	case jString:
		if !n.esc {
			return Scalar{Kind: String, Text: d.text(i)}
		}
		from := len(s.arena)
		s.arena = d.appendStr(s.arena, i)
		return Scalar{Kind: String, Text: s.arena[from:len(s.arena):len(s.arena)]}
	}
	return Scalar{Kind: JSON, Text: d.text(i)}
}
