package tsdb

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a small JSON reader for payloads and template files: it
// checks a document against RFC 8259 and indexes its values in one flat
// slice, which a document reuses from one payload to the next, so that
// reading a payload allocates nothing once the slice has grown. Values
// keep their text in the source: strings are unescaped only when a
// template takes them, and numbers stay as written, so that a number is
// written to a database exactly as the publisher sent it.

// jkind is the kind of a JSON value.
type jkind uint8

const (
	jNull jkind = iota
	jFalse
	jTrue
	jNumber
	jString
	jArray
	jObject
)

// jnode is one value of a document. An array's elements and an object's
// members follow it in the node slice (a member is its key, a jString,
// then its value); next is the index of the node after the value and
// everything inside it.
type jnode struct {
	kind jkind
	esc  bool  // a string with escapes
	from int32 // a string's text between the quotes; a number's text; an array's or object's text with its brackets
	to   int32
	next int32
	n    int32 // elements or members
	line int32 // 1-based, for messages about template files
}

// maxDepth bounds the nesting of arrays and objects.
const maxDepth = 1000

// errDepth and the others are the reasons a document is refused.
var errDepth = fmt.Errorf("nested deeper than %d levels", maxDepth)

// doc is a parsed JSON document.
type doc struct {
	src   []byte
	nodes []jnode
}

// syntaxError is a JSON syntax error at a byte offset.
type syntaxError struct {
	msg  string
	off  int
	line int
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("line %d (byte %d): %s", e.line, e.off, e.msg)
}

// parse reads src as one JSON value (with white space around it), reusing
// d's node slice. src is kept, not copied.
func (d *doc) parse(src []byte) error {
	d.src = src
	d.nodes = d.nodes[:0]
	p := parser{src: src, d: d, line: 1}
	p.space()
	if err := p.value(0); err != nil {
		return err
	}
	p.space()
	if p.i != len(src) {
		return p.fail("text after the JSON value")
	}
	return nil
}

type parser struct {
	src  []byte
	i    int
	line int
	d    *doc
}

func (p *parser) fail(msg string) error {
	return &syntaxError{msg: msg, off: p.i, line: p.line}
}

func (p *parser) space() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case '\n':
			p.line++
		case ' ', '\t', '\r':
		default:
			return
		}
		p.i++
	}
}

func (p *parser) value(depth int) error {
	if p.i >= len(p.src) {
		return p.fail("unexpected end of JSON")
	}
	idx := len(p.d.nodes)
	p.d.nodes = append(p.d.nodes, jnode{from: int32(p.i), line: int32(p.line)})
	n := &p.d.nodes[idx]
	switch c := p.src[p.i]; {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return p.fail(errDepth.Error())
		}
		if err := p.container(idx, depth); err != nil {
			return err
		}
	case c == '"':
		esc, err := p.str()
		if err != nil {
			return err
		}
		n = &p.d.nodes[idx]
		n.kind, n.esc, n.from, n.to = jString, esc, n.from+1, int32(p.i-1)
	case c == '-' || '0' <= c && c <= '9':
		if err := p.number(); err != nil {
			return err
		}
		n.kind, n.to = jNumber, int32(p.i)
	case c == 't':
		if err := p.lit("true"); err != nil {
			return err
		}
		n.kind, n.to = jTrue, int32(p.i)
	case c == 'f':
		if err := p.lit("false"); err != nil {
			return err
		}
		n.kind, n.to = jFalse, int32(p.i)
	case c == 'n':
		if err := p.lit("null"); err != nil {
			return err
		}
		n.kind, n.to = jNull, int32(p.i)
	default:
		return p.fail(fmt.Sprintf("invalid character %q looking for a value", c))
	}
	p.d.nodes[idx].next = int32(len(p.d.nodes))
	return nil
}

// container reads an array or object whose node is at idx.
func (p *parser) container(idx, depth int) error {
	obj := p.src[p.i] == '{'
	end := byte(']')
	kind := jArray
	if obj {
		end, kind = '}', jObject
	}
	p.i++
	p.space()
	count := int32(0)
	if p.i < len(p.src) && p.src[p.i] == end {
		p.i++
	} else {
		for {
			if obj {
				if p.i >= len(p.src) || p.src[p.i] != '"' {
					return p.fail("expected a string key")
				}
				if err := p.value(depth + 1); err != nil {
					return err
				}
				p.space()
				if p.i >= len(p.src) || p.src[p.i] != ':' {
					return p.fail("expected ':' after an object key")
				}
				p.i++
				p.space()
			}
			if err := p.value(depth + 1); err != nil {
				return err
			}
			count++
			p.space()
			if p.i >= len(p.src) {
				return p.fail("unexpected end of JSON")
			}
			if p.src[p.i] == end {
				p.i++
				break
			}
			if p.src[p.i] != ',' {
				return p.fail(fmt.Sprintf("expected ',' or '%c'", end))
			}
			p.i++
			p.space()
		}
	}
	n := &p.d.nodes[idx]
	n.kind, n.n, n.to = kind, count, int32(p.i)
	return nil
}

// str reads a string starting at its opening quote and reports whether it
// holds escapes.
func (p *parser) str() (bool, error) {
	p.i++
	esc := false
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			return esc, nil
		case c == '\\':
			esc = true
			if p.i+1 >= len(p.src) {
				return esc, p.fail("unexpected end of JSON in a string")
			}
			switch p.src[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.src) {
					return esc, p.fail("unexpected end of JSON in a \\u escape")
				}
				for _, h := range p.src[p.i+2 : p.i+6] {
					if !isHex(h) {
						return esc, p.fail("invalid \\u escape")
					}
				}
				p.i += 6
			default:
				return esc, p.fail(fmt.Sprintf("invalid escape \\%c", p.src[p.i+1]))
			}
		case c < 0x20:
			return esc, p.fail(fmt.Sprintf("control character %#02x in a string", c))
		default:
			p.i++
		}
	}
	return esc, p.fail("unexpected end of JSON in a string")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (p *parser) digits() int {
	start := p.i
	for p.i < len(p.src) && '0' <= p.src[p.i] && p.src[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() error {
	if p.src[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.src) && p.src[p.i] == '0':
		p.i++
	case p.digits() == 0:
		return p.fail("invalid number")
	}
	if p.i < len(p.src) && p.src[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return p.fail("invalid number: no digit after '.'")
		}
	}
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		p.i++
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return p.fail("invalid number: no digit in the exponent")
		}
	}
	if p.i < len(p.src) && isWordByte(p.src[p.i]) {
		return p.fail("invalid number")
	}
	return nil
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.'
}

func (p *parser) lit(word string) error {
	if len(p.src)-p.i < len(word) || string(p.src[p.i:p.i+len(word)]) != word ||
		p.i+len(word) < len(p.src) && isWordByte(p.src[p.i+len(word)]) {
		return p.fail(fmt.Sprintf("invalid literal (want %s)", word))
	}
	p.i += len(word)
	return nil
}

// text returns the source text of node i.
func (d *doc) text(i int32) []byte {
	n := &d.nodes[i]
	return d.src[n.from:n.to]
}

// appendStr appends the value of string node i, unescaped, to dst.
func (d *doc) appendStr(dst []byte, i int32) []byte {
	n := &d.nodes[i]
	s := d.src[n.from:n.to]
	if !n.esc {
		return append(dst, s...)
	}
	return unescape(dst, s)
}

// str returns the value of string node i as a Go string.
func (d *doc) str(i int32) string {
	n := &d.nodes[i]
	if !n.esc {
		return string(d.src[n.from:n.to])
	}
	return string(unescape(nil, d.src[n.from:n.to]))
}

// unescape appends the JSON string body s (checked by the parser), with its
// escapes decoded, to dst. A lone UTF-16 surrogate becomes U+FFFD, as in
// encoding/json.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		switch s[i+1] {
		case '"', '\\', '/':
			dst = append(dst, s[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(s[i+2:i+6])); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		}
		i += 2
	}
	return dst
}

// hex4 decodes four hex digits (checked by the parser).
func hex4(h []byte) rune {
	var r rune
	for _, c := range h[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// member returns the index of the value of key in object node i, or -1.
func (d *doc) member(i int32, key string) int32 {
	n := &d.nodes[i]
	k := i + 1
	var scratch [64]byte
	for range n.n {
		kn := &d.nodes[k]
		v := kn.next
		if kn.esc {
			if string(d.appendStr(scratch[:0], k)) == key {
				return v
			}
		} else if string(d.src[kn.from:kn.to]) == key {
			return v
		}
		k = d.nodes[v].next
	}
	return -1
}

// elem returns the index of element j (0-based) of array node i, or -1.
func (d *doc) elem(i int32, j int) int32 {
	n := &d.nodes[i]
	if j < 0 || j >= int(n.n) {
		return -1
	}
	e := i + 1
	for range j {
		e = d.nodes[e].next
	}
	return e
}

// errNotJSON is the reason a payload that does not parse is skipped.
var errNotJSON = errors.New("payload is not JSON")
