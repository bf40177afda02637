package topic_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mqttpersist/mqttpersist/topic"
)

// alphabet is what fuzz bytes are mapped to, so that random input makes topics with wildcards, '$', empty levels and shared filters.
var alphabet = []string{"a", "b", "/", "/", "+", "#", "$", "$share/g/", ""}

// sep separates the topics of a list in fuzz input.
const sep = byte(255)

// decode maps every byte of data onto alphabet.
func decode(data []byte) string {
	var b strings.Builder
	for _, c := range data {
		b.WriteString(alphabet[int(c)%len(alphabet)])
	}
	return b.String()
}

// decodeList splits data at sep and decodes each part.
func decodeList(data []byte) []string {
	var out []string
	for _, part := range strings.Split(string(data), string(sep)) {
		out = append(out, decode([]byte(part)))
	}
	return out
}

// enc is the inverse of decode for topics written with alphabet symbols a b / + # $ and S for "$share/g/".
func enc(s string) []byte {
	idx := map[rune]byte{'a': 0, 'b': 1, '/': 2, '+': 4, '#': 5, '$': 6, 'S': 7}
	var out []byte
	for _, r := range s {
		out = append(out, idx[r])
	}
	return out
}

// encList encodes topics as one fuzz input.
func encList(topics ...string) []byte {
	var out []byte
	for i, s := range topics {
		if i > 0 {
			out = append(out, sep)
		}
		out = append(out, enc(s)...)
	}
	return out
}

// FuzzIndex checks Index lookups after adds and removes against plain Match over the same pairs.
func FuzzIndex(f *testing.F) {
	f.Add(encList("a/b", "a/+", "a/#", "#", "+/+", "/#", "$a/#", "Sa/#", "+"), encList("a/b", "a", "/", "$a", "a//b"))
	f.Add(encList("#", "+/#", "$/+", "//", "S#", "a/b/#"), encList("$", "$/a", "a/b", "//"))
	f.Add(encList("a/b#", "S", "Sa", "+a"), encList("a/+", "a"))
	f.Fuzz(func(t *testing.T, fdata, ndata []byte) {
		filters, names := decodeList(fdata), decodeList(ndata)
		if len(filters) > 64 || len(names) > 64 {
			return
		}
		type pair struct {
			filter string
			v      int
		}
		ix := topic.NewIndex[int]()
		model := map[pair]bool{}
		for i, fl := range filters {
			p := pair{fl, i % 4}
			err := ix.Add(p.filter, p.v)
			if (err == nil) != (topic.ValidateFilter(fl) == nil) {
				t.Fatalf("Add(%q) = %v, ValidateFilter = %v", fl, err, topic.ValidateFilter(fl))
			}
			if err == nil {
				model[p] = true
			}
		}
		for i, fl := range filters {
			if i%3 != 0 {
				continue
			}
			p := pair{fl, (i + 1) % 4}
			if got := ix.Remove(p.filter, p.v); got != model[p] {
				t.Fatalf("Remove(%q, %d) = %v, want %v", p.filter, p.v, got, model[p])
			}
			delete(model, p)
		}
		if ix.Len() != len(model) {
			t.Fatalf("Len() = %d, want %d", ix.Len(), len(model))
		}
		// Also look up names derived from the filters.
		for _, fl := range filters {
			if _, in, ok := topic.Shared(fl); ok {
				fl = in
			}
			names = append(names, strings.NewReplacer("+", "x", "#", "x").Replace(fl))
		}
		for _, n := range names {
			got := map[pair]int{}
			ix.Each(n, func(fl string, v int) bool {
				got[pair{fl, v}]++
				return true
			})
			want := 0
			for p := range model {
				if topic.Match(p.filter, n) {
					want++
					if got[p] != 1 {
						t.Fatalf("Each(%q) visits (%q, %d) %d times, want once", n, p.filter, p.v, got[p])
					}
				}
			}
			if len(got) != want {
				t.Fatalf("Each(%q) visits %d pairs %v, want %d", n, len(got), got, want)
			}
			if m := ix.Match(n); len(m) != want {
				t.Fatalf("Match(%q) = %v, want %d values", n, m, want)
			}
		}
	})
}

// FuzzOverlap checks Overlap and Subsumes against Match: soundly for a given name, and completely on small filters by trying every relevant name.
func FuzzOverlap(f *testing.F) {
	for _, s := range [][3]string{
		{"#", "a/#", "a"}, {"a/+", "+/b", "a/b"}, {"+/#", "#", "a"}, {"a/+/#", "a/#", "a"},
		{"#", "$/#", "$"}, {"+/+", "/", "/"}, {"Sa/#", "a/b", "a/b"}, {"$a/+", "$a/#", "$a/b"},
	} {
		f.Add(enc(s[0]), enc(s[1]), enc(s[2]))
	}
	f.Fuzz(func(t *testing.T, adata, bdata, ndata []byte) {
		a, b, n := decode(adata), decode(bdata), decode(ndata)
		ma, mb := topic.Match(a, n), topic.Match(b, n)
		overlap, aSubB, bSubA := topic.Overlap(a, b), topic.Subsumes(a, b), topic.Subsumes(b, a)
		if overlap != topic.Overlap(b, a) {
			t.Fatalf("Overlap(%q, %q) != Overlap(%q, %q)", a, b, b, a)
		}
		if ma && mb && !overlap {
			t.Fatalf("Overlap(%q, %q) = false, but both match %q", a, b, n)
		}
		if aSubB && mb && !ma {
			t.Fatalf("Subsumes(%q, %q) = true, but only the second matches %q", a, b, n)
		}
		if bSubA && ma && !mb {
			t.Fatalf("Subsumes(%q, %q) = true, but only the second matches %q", b, a, n)
		}
		if (aSubB || bSubA) && !overlap {
			t.Fatalf("Subsumes holds for %q and %q, but Overlap = false", a, b)
		}
		la, lb := levels(a), levels(b)
		if la != nil && (!topic.Subsumes(a, a) || !topic.Overlap(a, a)) {
			t.Fatalf("Subsumes(%q, itself) = %v, Overlap = %v, want true for a valid filter", a, topic.Subsumes(a, a), topic.Overlap(a, a))
		}
		if la == nil || lb == nil || len(la) > 5 || len(lb) > 5 {
			return
		}
		// Every name matters only through which literal level of a or b each of its levels equals; "x" stands for all others.
		var witness, onlyA, onlyB string
		eachName(la, lb, func(name string) {
			ma, mb := topic.Match(a, name), topic.Match(b, name)
			if ma && mb && witness == "" {
				witness = name
			}
			if ma && !mb && onlyA == "" {
				onlyA = name
			}
			if mb && !ma && onlyB == "" {
				onlyB = name
			}
		})
		if overlap != (witness != "") {
			t.Fatalf("Overlap(%q, %q) = %v, but a name both match is %q", a, b, overlap, witness)
		}
		if aSubB != (onlyB == "") {
			t.Fatalf("Subsumes(%q, %q) = %v, but a name only the second matches is %q", a, b, aSubB, onlyB)
		}
		if bSubA != (onlyA == "") {
			t.Fatalf("Subsumes(%q, %q) = %v, but a name only the second matches is %q", b, a, bSubA, onlyA)
		}
	})
}

// levels returns the levels of the matching part of a valid filter, or nil for an invalid one.
func levels(filter string) []string {
	if topic.ValidateFilter(filter) != nil {
		return nil
	}
	if _, in, ok := topic.Shared(filter); ok {
		filter = in
	}
	return strings.Split(filter, "/")
}

// eachName calls fn for every name of 1 to max(len)+1 levels whose level k is a literal level k of la or lb, or "x".
func eachName(la, lb []string, fn func(string)) {
	maxLen := max(len(la), len(lb)) + 1
	var rec func(prefix string, k, n int)
	rec = func(prefix string, k, n int) {
		if k == n {
			fn(prefix)
			return
		}
		choices := []string{"x"}
		for _, l := range [][]string{la, lb} {
			if k < len(l) && l[k] != "+" && l[k] != "#" {
				choices = append(choices, l[k])
			}
		}
		for _, c := range choices {
			if k == 0 {
				rec(c, 1, n)
			} else {
				rec(prefix+"/"+c, k+1, n)
			}
		}
	}
	for n := 1; n <= maxLen; n++ {
		rec("", 0, n)
	}
}

// FuzzValidate checks validation of arbitrary strings against a plain strings.Split reading of the rules, and that nothing panics.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"a/b", "a/+/#", "#/a", "a+", "$share/g/a", "$share/g", "\xff", "a\x00", "", "a\r\n", "$share//#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nameErr, filterErr := topic.ValidateName(s), topic.ValidateFilter(s)
		if (nameErr == nil) != refValid(s, false) {
			t.Fatalf("ValidateName(%q) = %v, reference says valid = %v", s, nameErr, refValid(s, false))
		}
		if (filterErr == nil) != refValid(s, true) {
			t.Fatalf("ValidateFilter(%q) = %v, reference says valid = %v", s, filterErr, refValid(s, true))
		}
		for _, err := range []error{nameErr, filterErr} {
			var te *topic.Error
			if err != nil && (!errors.As(err, &te) || !errors.Is(err, topic.ErrInvalid) || te.Topic != s ||
				te.Level >= strings.Count(s, "/")+1 || te.Reason == "" || !strings.Contains(te.Reason, "[MQTT-")) {
				t.Fatalf("validating %q gave %#v", s, err)
			}
		}
		if nameErr == nil && !topic.Match("#", s) && s[0] != '$' {
			t.Fatalf(`Match("#", %q) = false for a valid name`, s)
		}
		if nameErr == nil && filterErr == nil && !topic.Match(s, s) && !strings.HasPrefix(s, "$share/") {
			t.Fatalf("Match(%q, %q) = false for a valid name used as a filter", s, s)
		}
		topic.Overlap(s, s)
		topic.Subsumes(s, "#")
		topic.Prefix(s)
		topic.Shared(s)
	})
}

// refValid is a deliberately simple reading of the validation rules.
func refValid(s string, filter bool) bool {
	if s == "" || len(s) > topic.MaxLen || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return false
	}
	lv := strings.Split(s, "/")
	if filter && len(lv) >= 2 && lv[0] == "$share" {
		if lv[1] == "" || strings.ContainsAny(lv[1], "+#") || len(lv) < 3 || strings.Join(lv[2:], "/") == "" {
			return false
		}
		lv = lv[2:]
	}
	for i, l := range lv {
		if !filter && strings.ContainsAny(l, "+#") {
			return false
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(lv)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}
