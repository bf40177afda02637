package tsdb

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the type of a value a template yields for a point.
type Kind uint8

// The kinds of values. JSON values keep their type (a number stays a
// number); the placeholders are strings but for $qos and $timestamp,
// which are integers, and $payload, which is the payload's bytes.
const (
	// Null is JSON null.
	Null Kind = iota
	// String is a JSON string, unescaped, or a text placeholder ($id,
	// $clientid, $username, $peerhost, $topic).
	String
	// Number is a JSON number, as the payload or template wrote it.
	Number
	// Int is an integer placeholder ($qos, $timestamp), in decimal.
	Int
	// Bool is JSON true or false.
	Bool
	// JSON is a JSON object or array, as written.
	JSON
	// Bytes is the message payload as it is ($payload).
	Bytes
)

var kindNames = [...]string{"null", "string", "number", "integer", "boolean", "JSON object or array", "payload bytes"}

// String returns the kind's name, such as "number".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Scalar is one value of one point: its kind and its text. Text is a
// string's bytes, a number as written ("21.5", "1e3"), an integer in
// decimal, "true" or "false", a JSON object or array as written, or the
// payload; it is empty for Null. Text may point into the message or the
// Scope that made it: it is valid until the Scope's next Reset and must
// not be modified.
type Scalar struct {
	Kind Kind
	Text []byte
}

// String returns the scalar's text.
func (s Scalar) String() string { return string(s.Text) }

// placeholder is one of the message placeholders.
type placeholder uint8

const (
	phNone placeholder = iota
	phID
	phClientID
	phUsername
	phPeerHost
	phQoS
	phTopic
	phPayload
	phTimestamp
)

// Placeholders lists the placeholders a template may use, as the seeds
// name them: $id (the message ID), $clientid (the publisher), $username,
// $peerhost, $qos, $topic, $payload (the payload as it is; in a path, its
// JSON value) and $timestamp (when the broker received the message, in
// nanoseconds since 1970, or the writer's precision).
var Placeholders = []string{"$id", "$clientid", "$username", "$peerhost", "$qos", "$topic", "$payload", "$timestamp"}

var placeholders = map[string]placeholder{
	"$id": phID, "$clientid": phClientID, "$username": phUsername, "$peerhost": phPeerHost,
	"$qos": phQoS, "$topic": phTopic, "$payload": phPayload, "$timestamp": phTimestamp,
	// The seeds' prose calls the whole payload $content once.
	"$content": phPayload,
}

// step is one element of a payload path after "$payload": an object key,
// the n-th element of an array ($n, n >= 1), or every element ($0).
type step struct {
	key   string
	index int // 0: a key; n >= 1: $n; -1: $0
}

// Value is one value of a template as its file gives it: a fixed value
// (a string, number, boolean or null), a placeholder such as "$clientid",
// or a payload path such as ["$payload", "data", "$0", "temp"]. The zero
// Value is absent (a template without "timestamp").
type Value struct {
	// Where names the value in its template, such as "tags.host".
	Where string
	// Text is the value as the template file wrote it (JSON).
	Text string

	set   bool
	fixed Scalar
	ph    placeholder
	path  []step // nil unless a payload path
	all   bool   // the path takes every element ($0)
}

// IsZero reports whether the value is absent from its template.
func (v *Value) IsZero() bool { return !v.set }

// Fixed reports whether the value is the same for every message.
func (v *Value) Fixed() bool { return v.set && v.ph == phNone && v.path == nil }

// Each reports whether the value is a payload path taking every element of
// an array ($0): one point per element.
func (v *Value) Each() bool { return v.all }

// compileValue compiles the template value at node i of d.
func compileValue(d *doc, i int32, where string) (Value, error) {
	n := &d.nodes[i]
	v := Value{Where: where, Text: string(d.text(i)), set: true}
	if n.kind == jString {
		v.Text = `"` + v.Text + `"`
	}
	switch n.kind {
	case jNull:
		v.fixed = Scalar{Kind: Null}
	case jTrue, jFalse:
		v.fixed = Scalar{Kind: Bool, Text: d.text(i)}
	case jNumber:
		v.fixed = Scalar{Kind: Number, Text: []byte(string(d.text(i)))}
	case jString:
		s := d.str(i)
		if strings.HasPrefix(s, "$") {
			ph, ok := placeholders[s]
			if !ok {
				return v, fmt.Errorf("%q is not a placeholder (want one of %s, a payload path such as [\"$payload\", \"key\"], or a fixed value not starting with '$')", s, strings.Join(Placeholders, " "))
			}
			v.ph = ph
			break
		}
		v.fixed = Scalar{Kind: String, Text: []byte(s)}
	case jArray:
		return v, v.compilePath(d, i)
	case jObject:
		return v, fmt.Errorf("an object is not a template value (want a fixed value, a placeholder such as \"$clientid\" or a payload path such as [\"$payload\", \"data\", \"$0\", \"temp\"])")
	}
	return v, nil
}

// compilePath compiles a payload path (array node i).
func (v *Value) compilePath(d *doc, i int32) error {
	n := &d.nodes[i]
	if n.n == 0 {
		return fmt.Errorf("an empty payload path (want [\"$payload\", …])")
	}
	v.path = []step{}
	e := i + 1
	for j := range int(n.n) {
		en := &d.nodes[e]
		if en.kind != jString {
			return fmt.Errorf("path %s: element %d is %s, not a string", v.Text, j+1, d.text(e))
		}
		s := d.str(e)
		switch {
		case j == 0:
			if ph := placeholders[s]; ph != phPayload {
				return fmt.Errorf("path %s starts with %q (a payload path starts with \"$payload\")", v.Text, s)
			}
		case s == "$0":
			if v.all {
				return fmt.Errorf("path %s takes \"$0\" twice (one point per element of one array)", v.Text)
			}
			v.all = true
			v.path = append(v.path, step{index: -1})
		case isIndex(s):
			k, err := strconv.Atoi(s[1:])
			if err != nil || k < 1 {
				return fmt.Errorf("path %s: %q is not an array position (want $1, $2, …, or $0 for every element)", v.Text, s)
			}
			v.path = append(v.path, step{index: k})
		default:
			v.path = append(v.path, step{key: s})
		}
		e = en.next
	}
	return nil
}

// isIndex reports whether s is "$" and digits.
func isIndex(s string) bool {
	if len(s) < 2 || s[0] != '$' {
		return false
	}
	for _, c := range []byte(s[1:]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
