package tsdb

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// Source says where a template comes from: its file, its topic key and its
// place in the file.
type Source struct {
	// File is the file's name as given to Load (or the name given to
	// Parse).
	File string
	// Topic is the template's key: a topic filter, wildcards allowed.
	Topic string
	// N is the template's position in the file, from 1.
	N int
	// Name is the template's name (Timescale templates have one).
	Name string
}

// String names the template, such as `templates.json topic "sample"
// (template 1)`.
func (s Source) String() string {
	if s.Name != "" {
		return fmt.Sprintf("%s topic %q (template %d, %q)", s.File, s.Topic, s.N, s.Name)
	}
	return fmt.Sprintf("%s topic %q (template %d)", s.File, s.Topic, s.N)
}

// TemplateError is a template file that does not load: it names the file,
// the template's topic key and the value (such as "tags.host") at fault.
// It matches persist.ErrInvalid.
type TemplateError struct {
	// File is the file's name; Topic and N the template ("" and 0 when the
	// error is about the file as a whole).
	File  string
	Topic string
	N     int
	// Where is the value at fault, such as "tags.host", or "".
	Where string
	// Err is what is wrong.
	Err error
}

// Error returns `tsdb: <file>: topic "<key>" (template <n>): <where>: <err>`.
func (e *TemplateError) Error() string {
	var b strings.Builder
	b.WriteString("tsdb: ")
	b.WriteString(e.File)
	if e.N > 0 {
		fmt.Fprintf(&b, ": topic %q (template %d)", e.Topic, e.N)
	}
	if e.Where != "" {
		b.WriteString(": ")
		b.WriteString(e.Where)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns persist.ErrInvalid and the cause.
func (e *TemplateError) Unwrap() []error { return []error{persist.ErrInvalid, e.Err} }

// Set is the templates of one file: a map from topic filters to
// templates, where several templates may match one topic. T is Influx,
// OpenTSDB or Timescale. A Set is read only once loaded, and safe for
// concurrent use.
type Set[T any] struct {
	file  string
	list  []*T
	srcs  []*Source
	index *topic.Index[int]
	exact map[string][]int // the templates of filters without wildcards, by topic
	wild  bool             // some filter has a wildcard
}

// File returns the name of the set's file.
func (s *Set[T]) File() string { return s.file }

// Len returns the number of templates.
func (s *Set[T]) Len() int { return len(s.list) }

// Templates returns the templates in file order.
func (s *Set[T]) Templates() []*T { return slices.Clone(s.list) }

// Source returns where template i (in file order) comes from.
func (s *Set[T]) Source(i int) *Source { return s.srcs[i] }

// Each calls fn with every template whose topic filter matches the topic
// name, in file order, with the template's index in that order (see
// Source). A filter starting with a wildcard does not match topics
// starting with '$' [MQTT-4.7.2-1].
func (s *Set[T]) Each(name string, fn func(i int, t *T)) {
	if !s.wild {
		for _, i := range s.exact[name] {
			fn(i, s.list[i])
		}
		return
	}
	var buf [16]int
	hits := buf[:0]
	s.index.Each(name, func(_ string, i int) bool {
		hits = append(hits, i)
		return true
	})
	slices.Sort(hits)
	for _, i := range hits {
		fn(i, s.list[i])
	}
}

// compiler compiles one template object (node i of d) of a file.
type compiler[T any] func(d *doc, i int32, src *Source) (*T, *TemplateError)

// load reads a template file with compile.
func load[T any](file string, compile compiler[T]) (*Set[T], error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &TemplateError{File: file, Err: err}
	}
	return parse(file, data, compile)
}

// parse parses the template file data, named name in errors.
func parse[T any](name string, data []byte, compile compiler[T]) (*Set[T], error) {
	var d doc
	if err := d.parse(data); err != nil {
		return nil, &TemplateError{File: name, Err: fmt.Errorf("not JSON: %w", err)}
	}
	root := &d.nodes[0]
	if root.kind != jObject {
		return nil, &TemplateError{File: name, Err: fmt.Errorf("the file holds %s; want an object mapping topics to templates, such as {\"sensor/#\": {…}}", jkindName(root.kind))}
	}
	s := &Set[T]{file: name, index: topic.NewIndex[int](), exact: map[string][]int{}}
	k := int32(1)
	for range root.n {
		key := d.str(k)
		v := d.nodes[k].next
		if err := topic.ValidateFilter(key); err != nil {
			return nil, &TemplateError{File: name, Err: fmt.Errorf("line %d: key %q is not a topic filter: %v", d.nodes[k].line, key, unprefix(err))}
		}
		if _, _, shared := topic.Shared(key); shared {
			return nil, &TemplateError{File: name, Err: fmt.Errorf("line %d: key %q is a shared subscription, not a topic filter", d.nodes[k].line, key)}
		}
		var objs []int32
		switch d.nodes[v].kind {
		case jObject:
			objs = append(objs, v)
		case jArray: // several templates for one topic
			e := v + 1
			for range d.nodes[v].n {
				objs = append(objs, e)
				e = d.nodes[e].next
			}
		default:
			return nil, &TemplateError{File: name, Topic: key, N: len(s.list) + 1,
				Err: fmt.Errorf("line %d: the template is %s; want an object (or an array of objects)", d.nodes[v].line, jkindName(d.nodes[v].kind))}
		}
		for _, o := range objs {
			src := &Source{File: name, Topic: key, N: len(s.list) + 1}
			if d.nodes[o].kind != jObject {
				return nil, &TemplateError{File: name, Topic: key, N: src.N,
					Err: fmt.Errorf("line %d: the template is %s; want an object", d.nodes[o].line, jkindName(d.nodes[o].kind))}
			}
			t, terr := compile(&d, o, src)
			if terr != nil {
				terr.File, terr.Topic, terr.N = name, key, src.N
				return nil, terr
			}
			i := len(s.list)
			s.list = append(s.list, t)
			s.srcs = append(s.srcs, src)
			if err := s.index.Add(key, i); err != nil {
				return nil, &TemplateError{File: name, Topic: key, N: src.N, Err: err}
			}
			if topic.HasWildcard(key) {
				s.wild = true
			}
			s.exact[key] = append(s.exact[key], i)
		}
		k = d.nodes[v].next
	}
	if len(s.list) == 0 {
		return nil, &TemplateError{File: name, Err: errors.New("no template")}
	}
	return s, nil
}

// unprefix drops the "topic: " a topic error starts with.
func unprefix(err error) string {
	return strings.TrimPrefix(err.Error(), "topic: ")
}

// fields reads the members of template object i: it returns the value
// node of each known key and fails on a key it does not know (a typo).
func fields(d *doc, i int32, known ...string) (map[string]int32, *TemplateError) {
	out := make(map[string]int32, len(known))
	k := i + 1
	for range d.nodes[i].n {
		key := d.str(k)
		v := d.nodes[k].next
		if !slices.Contains(known, key) {
			return nil, &TemplateError{Err: fmt.Errorf("line %d: unknown key %q (a template has %s)", d.nodes[k].line, key, strings.Join(quoteAll(known), ", "))}
		}
		if _, dup := out[key]; dup {
			return nil, &TemplateError{Err: fmt.Errorf("line %d: key %q given twice", d.nodes[k].line, key)}
		}
		out[key] = v
		k = d.nodes[v].next
	}
	return out, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.Quote(x)
	}
	return out
}

// value compiles the template value at node v, named where.
func value(d *doc, v int32, where string) (Value, *TemplateError) {
	val, err := compileValue(d, v, where)
	if err != nil {
		return val, &TemplateError{Where: where, Err: fmt.Errorf("line %d: %w", d.nodes[v].line, err)}
	}
	return val, nil
}

// Pair is a key and its value: a tag or a field.
type Pair struct {
	Key   string
	Value Value
}

// pairs compiles the object at node v (such as "tags") into pairs sorted
// by key, checking each key with check.
func pairs(d *doc, v int32, what string, check func(key string) error) ([]Pair, *TemplateError) {
	if d.nodes[v].kind != jObject {
		return nil, &TemplateError{Where: what, Err: fmt.Errorf("line %d: %s is %s; want an object", d.nodes[v].line, what, jkindName(d.nodes[v].kind))}
	}
	var out []Pair
	k := v + 1
	for range d.nodes[v].n {
		key := d.str(k)
		val := d.nodes[k].next
		where := what + "." + key
		if err := check(key); err != nil {
			return nil, &TemplateError{Where: where, Err: fmt.Errorf("line %d: key %q: %w", d.nodes[k].line, key, err)}
		}
		if slices.ContainsFunc(out, func(p Pair) bool { return p.Key == key }) {
			return nil, &TemplateError{Where: where, Err: fmt.Errorf("line %d: key %q given twice", d.nodes[k].line, key)}
		}
		x, terr := value(d, val, where)
		if terr != nil {
			return nil, terr
		}
		out = append(out, Pair{Key: key, Value: x})
		k = d.nodes[val].next
	}
	slices.SortFunc(out, func(a, b Pair) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// need returns the node of a required key, or an error naming it.
func need(d *doc, f map[string]int32, key, want string) (int32, *TemplateError) {
	v, ok := f[key]
	if !ok {
		return 0, &TemplateError{Where: key, Err: fmt.Errorf("missing (a template needs %q: %s)", key, want)}
	}
	return v, nil
}
