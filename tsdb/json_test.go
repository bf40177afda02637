package tsdb

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzJSON checks the payload reader against encoding/json: it accepts
// exactly the documents json.Valid accepts (nested less than maxDepth),
// and reads every string as json.Unmarshal does (for valid UTF-8 input,
// which json.Unmarshal would otherwise change).
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"data": [{"temp": 1, "host": "serverA"}, {"temp": 2.5e-3, "host": "b\u00e9"}]}`,
		`[1, -0, 0.5, 1E+9, true, false, null, "", "\"\\\/\b\f\n\r\t", "\ud83d\ude00", "\udc00 lone"]`,
		`"just a string"`, `  42  `, `{}`, `[]`, `{"a":{"b":{"c":[[]]}}}`,
		`{"a" 1}`, `[1,]`, `01`, `1.`, `-`, `"\x"`, "\"\x01\"", `nul`, `{"a":1}x`, `[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		err := d.parse(data)
		valid := json.Valid(data)
		if valid != (err == nil) && !(valid && strings.Contains(err.Error(), "nested deeper")) {
			t.Fatalf("%q: parse error %v, json.Valid %v", data, err, valid)
		}
		if err != nil || !utf8.Valid(data) {
			return
		}
		for i := range d.nodes {
			n := &d.nodes[i]
			if n.kind != jString {
				continue
			}
			var want string
			if err := json.Unmarshal(d.src[n.from-1:n.to+1], &want); err != nil {
				t.Fatalf("%q: node %d %q: %v", data, i, d.src[n.from-1:n.to+1], err)
			}
			if got := d.str(int32(i)); got != want {
				t.Fatalf("%q: string %q read as %q, want %q", data, d.src[n.from-1:n.to+1], got, want)
			}
		}
	})
}

// TestDepth: a payload nested deeper than maxDepth is not JSON to a
// template (and does not exhaust the stack).
func TestDepth(t *testing.T) {
	var d doc
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if err := d.parse([]byte(deep)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("depth %d: %v", maxDepth+1, err)
	}
	ok := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if err := d.parse([]byte(ok)); err != nil {
		t.Errorf("depth %d: %v", maxDepth, err)
	}
}
