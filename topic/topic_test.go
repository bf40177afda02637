package topic_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mqttpersist/mqttpersist/topic"
)

// invalid describes the *topic.Error a bad topic must produce.
type invalid struct {
	level  int    // 0-based level, -1 when about the whole topic
	clause string // the spec clause the reason must cite
}

// ok marks a valid topic in the tables below.
var ok = invalid{}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		want invalid
	}{
		{"a/b/c", ok},
		{"a", ok},
		{"/", ok},                               // a name of only '/' is valid (4.7.3)
		{"/a", ok},                              // a leading '/' makes an empty first level (4.7.3)
		{"a/", ok},                              // a trailing '/' makes an empty last level (4.7.3)
		{"a//b", ok},                            // empty levels are levels
		{"$SYS/broker/uptime", ok},              // '$' names are valid names [MQTT-4.7.2-1]
		{"$share/g/a", ok},                      // "$share" is only special in a filter
		{"sport tennis", ok},                    // spaces are allowed (4.7.3)
		{"a\r\nb/\x01", ok},                     // control characters are only "should not" (1.5.4)
		{"a'; DROP TABLE x; --", ok},            // anything else is data
		{"ü/日本/🙂", ok},                          // UTF-8 beyond ASCII [MQTT-1.5.4-1]
		{strings.Repeat("a", topic.MaxLen), ok}, // 65535 bytes is the limit [MQTT-4.7.3-3]
		{strings.Repeat("a/", topic.MaxLen/2) + "a", ok},                     // 32768 levels, 65535 bytes [MQTT-4.7.3-3]
		{"", invalid{-1, "[MQTT-4.7.3-1]"}},                                  // empty
		{strings.Repeat("a", topic.MaxLen+1), invalid{-1, "[MQTT-4.7.3-3]"}}, // too long
		{"a/b\x00c", invalid{1, "[MQTT-4.7.3-2]"}},                           // U+0000
		{"a/\xff", invalid{1, "[MQTT-1.5.4-1]"}},                             // invalid byte
		{"a/b/\xed\xa0\x80", invalid{2, "[MQTT-1.5.4-1]"}},                   // UTF-8 encoded surrogate U+D800
		{"a/\xc3", invalid{1, "[MQTT-1.5.4-1]"}},                             // truncated sequence
		{"a/+", invalid{1, "[MQTT-3.3.2-2]"}},                                // no wildcards in a name
		{"a/#", invalid{1, "[MQTT-3.3.2-2]"}},                                // no wildcards in a name
		{"a/b+c/d", invalid{1, "[MQTT-3.3.2-2]"}},                            // not even inside a level
		{"#", invalid{0, "[MQTT-3.3.2-2]"}},                                  // nor alone
		{"a/\x00/+", invalid{1, "[MQTT-4.7.3-2]"}},                           // the first problem is reported
		{strings.Repeat("a/", 40) + "x#", invalid{40, "[MQTT-3.3.2-2]"}},     // level index counts from 0
	}
	for _, tt := range tests {
		checkErr(t, "ValidateName", tt.name, topic.ValidateName(tt.name), false, tt.want)
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   invalid
	}{
		{"a/b/c", ok},
		{"#", ok},                           // '#' alone [MQTT-4.7.1-2]
		{"a/#", ok},                         // '#' after a separator, last [MQTT-4.7.1-2]
		{"/#", ok},                          // after an empty level [MQTT-4.7.1-2]
		{"+", ok},                           // '+' alone [MQTT-4.7.1-3]
		{"+/+/+", ok},                       // '+' at several levels [MQTT-4.7.1-3]
		{"a/+/b/#", ok},                     // both kinds [MQTT-4.7.1-3]
		{"/+", ok},                          // '+' after an empty level [MQTT-4.7.1-3]
		{"+/", ok},                          // '+' before an empty level [MQTT-4.7.1-3]
		{"a//b", ok},                        // empty levels (4.7.3)
		{"$SYS/#", ok},                      // [MQTT-4.7.2-1]
		{"$share", ok},                      // no '/': an ordinary filter
		{"$sharex/g/a", ok},                 // not the share prefix
		{"$share/g/a/+/#", ok},              // shared [MQTT-4.8.2-1]
		{"$share/g/#", ok},                  // shared [MQTT-4.8.2-1]
		{"$share/g//", ok},                  // inner filter "/" [MQTT-4.8.2-2]
		{"$share/g/$share/h/a", ok},         // inner filter is an ordinary filter
		{"$share/g:1.x\r\n/a", ok},          // any share name without '/', '+', '#' [MQTT-4.8.2-2]
		{"a\r\n/+", ok},                     // control characters are only "should not" (1.5.4)
		{"", invalid{-1, "[MQTT-4.7.3-1]"}}, // empty
		{strings.Repeat("+/", 40000), invalid{-1, "[MQTT-4.7.3-3]"}}, // too long
		{"a/b#/c", invalid{1, "[MQTT-4.7.1-2]"}},                     // '#' not alone
		{"a/#b", invalid{1, "[MQTT-4.7.1-2]"}},                       // '#' not alone
		{"a/#/c", invalid{1, "[MQTT-4.7.1-2]"}},                      // '#' not last
		{"#/", invalid{0, "[MQTT-4.7.1-2]"}},                         // '#' not last, even before an empty level
		{"##", invalid{0, "[MQTT-4.7.1-2]"}},                         // '#' not alone
		{"a/+b", invalid{1, "[MQTT-4.7.1-3]"}},                       // '+' not alone
		{"a/b+/c", invalid{1, "[MQTT-4.7.1-3]"}},                     // '+' not alone
		{"++", invalid{0, "[MQTT-4.7.1-3]"}},                         // '+' not alone
		{"+#", invalid{0, "[MQTT-4.7.1-2]"}},                         // '#' not alone
		{"a/\x00", invalid{1, "[MQTT-4.7.3-2]"}},                     // U+0000
		{"+/\xfe/#", invalid{1, "[MQTT-1.5.4-1]"}},                   // invalid UTF-8
		{"$share/", invalid{1, "[MQTT-4.8.2-1]"}},                    // no share name
		{"$share//a", invalid{1, "[MQTT-4.8.2-1]"}},                  // empty share name
		{"$share/g", invalid{1, "[MQTT-4.8.2-2]"}},                   // no filter after the share name
		{"$share/g/", invalid{2, "[MQTT-4.8.2-2]"}},                  // empty filter after the share name
		{"$share/g+/a", invalid{1, "[MQTT-4.8.2-2]"}},                // '+' in share name
		{"$share/+/a", invalid{1, "[MQTT-4.8.2-2]"}},                 // '+' as share name
		{"$share/#/a", invalid{1, "[MQTT-4.8.2-2]"}},                 // '#' in share name
		{"$share/#", invalid{1, "[MQTT-4.8.2-2]"}},                   // '#' in share name
		{"$share/g/a/#/b", invalid{3, "[MQTT-4.7.1-2]"}},             // inner filter is checked
		{"$share/g/a+", invalid{2, "[MQTT-4.7.1-3]"}},                // inner filter is checked
		{"$share/\xff/a", invalid{1, "[MQTT-1.5.4-1]"}},              // share name is UTF-8 too
	}
	for _, tt := range tests {
		checkErr(t, "ValidateFilter", tt.filter, topic.ValidateFilter(tt.filter), true, tt.want)
	}
}

// checkErr checks that err from fn(s) is nil for a valid topic, or an *Error describing s, the level and the clause.
func checkErr(t *testing.T, fn, s string, err error, filter bool, want invalid) {
	t.Helper()
	short := s
	if len(short) > 40 {
		short = short[:40] + "..."
	}
	if want == ok {
		if err != nil {
			t.Errorf("%s(%q) = %v, want nil", fn, short, err)
		}
		return
	}
	var te *topic.Error
	if !errors.As(err, &te) {
		t.Errorf("%s(%q) = %v, want *topic.Error", fn, short, err)
		return
	}
	if !errors.Is(err, topic.ErrInvalid) {
		t.Errorf("%s(%q): errors.Is(err, ErrInvalid) = false", fn, short)
	}
	if te.Topic != s || te.Filter != filter || te.Level != want.level || !strings.Contains(te.Reason, want.clause) {
		t.Errorf("%s(%q) = {Topic %q, Filter %v, Level %d, Reason %q}, want Filter %v, Level %d, Reason citing %s",
			fn, short, te.Topic, te.Filter, te.Level, te.Reason, filter, want.level, want.clause)
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		filter bool
		topic  string
		want   string
	}{
		{true, "a/b#/c", `topic: invalid filter "a/b#/c": level 1 "b#": '#' must be alone in its level [MQTT-4.7.1-2]`},
		{true, "a/+x", `topic: invalid filter "a/+x": level 1 "+x": '+' must be alone in its level [MQTT-4.7.1-3]`},
		{false, "x/a+", `topic: invalid name "x/a+": level 1 "a+": wildcard '+' is not allowed in a topic name [MQTT-3.3.2-2]`},
		{false, "", `topic: invalid name "": must not be empty [MQTT-4.7.3-1]`},
		{false, "a\r\n\x00", `topic: invalid name "a\r\n\x00": level 0 "a\r\n\x00": must not contain U+0000 [MQTT-4.7.3-2]`},
		{true, "$share/g", `topic: invalid filter "$share/g": level 1 "g": share name must be followed by '/' and a topic filter [MQTT-4.8.2-2]`},
	}
	for _, tt := range tests {
		var err error
		if tt.filter {
			err = topic.ValidateFilter(tt.topic)
		} else {
			err = topic.ValidateName(tt.topic)
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("validate(%q) = %v\nwant %s", tt.topic, err, tt.want)
		}
	}
}

func TestErrorMessageLongTopic(t *testing.T) {
	long := strings.Repeat("ü", 40000) // 80000 bytes
	err := topic.ValidateName(long)
	if err == nil {
		t.Fatal("ValidateName(80000 bytes) = nil")
	}
	msg := err.Error()
	if len(msg) > 300 || !strings.Contains(msg, "80000 bytes") || !strings.Contains(msg, "[MQTT-4.7.3-3]") {
		t.Errorf("message for an 80000-byte name = %q (%d bytes), want a short one naming the size and clause", msg, len(msg))
	}
	if strings.Contains(msg, `\x`) {
		t.Errorf("message %q cuts a UTF-8 sequence in half", msg)
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		filter, name string
		want         bool
	}{
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/B/c", false}, // case matters (4.7.3)
		{"a/b", "a/b/", false},    // a trailing '/' is another level (4.7.3)
		{"/a", "a", false},        // a leading '/' is another level (4.7.3)
		{"a//b", "a//b", true},    // empty levels match literally (4.7.3)
		{"a//b", "a/b", false},    // (4.7.3)
		{"#", "a/b/c", true},      // [MQTT-4.7.1-2]
		{"#", "/", true},          // [MQTT-4.7.1-2]
		{"a/#", "a", true},        // '#' matches the parent level [MQTT-4.7.1-2]
		{"a/#", "a/", true},       // [MQTT-4.7.1-2]
		{"a/#", "a/b/c/d", true},  // [MQTT-4.7.1-2]
		{"a/#", "ab", false},      // [MQTT-4.7.1-2]
		{"a/#", "b/a", false},     // [MQTT-4.7.1-2]
		{"sport/tennis/player1/#", "sport/tennis/player1", true},                 // [MQTT-4.7.1-2]
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},         // [MQTT-4.7.1-2]
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true}, // [MQTT-4.7.1-2]
		{"/#", "/", true},                                         // [MQTT-4.7.1-2]
		{"/#", "a", false},                                        // [MQTT-4.7.1-2]
		{"a/+/#", "a/b", true},                                    // [MQTT-4.7.1-2]
		{"a/+/#", "a", false},                                     // '+' needs a level [MQTT-4.7.1-3]
		{"sport/tennis/+", "sport/tennis/player1", true},          // [MQTT-4.7.1-3]
		{"sport/tennis/+", "sport/tennis/player1/ranking", false}, // [MQTT-4.7.1-3]
		{"sport/+", "sport", false},                               // [MQTT-4.7.1-3]
		{"sport/+", "sport/", true},                               // '+' matches an empty level [MQTT-4.7.1-3]
		{"+", "a", true},                                          // [MQTT-4.7.1-3]
		{"+", "/", false},                                         // [MQTT-4.7.1-3]
		{"+/+", "/", true},                                        // [MQTT-4.7.1-3]
		{"/+", "/", true},                                         // [MQTT-4.7.1-3]
		{"+/x", "/x", true},                                       // [MQTT-4.7.1-3]
		{"+/+/+", "a/b", false},                                   // [MQTT-4.7.1-3]
		{"+/tennis/#", "sport/tennis/player1/ranking", true},      // [MQTT-4.7.1-3]
		{"#", "$SYS/uptime", false},                               // [MQTT-4.7.2-1]
		{"#", "$SYS", false},                                      // [MQTT-4.7.2-1]
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},      // [MQTT-4.7.2-1]
		{"$SYS/#", "$SYS/monitor/Clients", true},                  // [MQTT-4.7.2-1]
		{"$SYS/#", "$SYS", true},                                  // [MQTT-4.7.2-1]
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},          // [MQTT-4.7.2-1]
		{"a/+", "a/$b", true},                                     // '$' only matters in the first level [MQTT-4.7.2-1]
		{"a/#", "a/$b", true},                                     // [MQTT-4.7.2-1]
		{"+", "x$", true},                                         // [MQTT-4.7.2-1]
		{"$share/g/a/+", "a/b", true},                             // a shared filter matches as its inner filter [MQTT-4.8.2-1]
		{"$share/g/#", "x", true},                                 // [MQTT-4.8.2-1]
		{"$share/g/#", "$SYS/x", false},                           // the '$' rule applies to the inner filter [MQTT-4.7.2-1]
		{"$share/g/a", "$share/g/a", false},                       // it is not a literal [MQTT-4.8.2-1]
		{"$share/g/$share/g/a", "$share/g/a", true},               // but its inner filter may be
		{"$share", "$share", true},                                // no '/': a literal filter
		{"a/b\r\n", "a/b\r\n", true},                              // control characters are data
		{"ü/+", "ü/日本", true},                                     // byte-wise levels (4.7.3)
		{"a/b#", "a/b#", false},                                   // invalid filter [MQTT-4.7.1-2]
		{"a/+", "a/+", false},                                     // invalid name [MQTT-3.3.2-2]
		{"a/#", "a/#", false},                                     // invalid name [MQTT-3.3.2-2]
		{"#", "", false},                                          // invalid name [MQTT-4.7.3-1]
		{"", "a", false},                                          // invalid filter [MQTT-4.7.3-1]
		{"a/\xff", "a/\xff", false},                               // invalid UTF-8 [MQTT-1.5.4-1]
		{"#", "a\x00", false},                                     // U+0000 [MQTT-4.7.3-2]
		{"$share/g", "g", false},                                  // invalid shared filter [MQTT-4.8.2-2]
	}
	for _, tt := range tests {
		if got := topic.Match(tt.filter, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.name, got, tt.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		topic.Match("site/+/device/#", "site/12/device/34/temp")
		topic.Match("$share/g/site/12/device/34/temp", "site/12/device/34/temp")
		topic.Overlap("site/+/device/#", "site/1/+/2")
		topic.Subsumes("site/#", "site/+/device/34/temp")
		topic.Prefix("site/1/+")
	})
	if allocs != 0 {
		t.Errorf("Match, Overlap, Subsumes and Prefix allocate %v times per run, want 0", allocs)
	}
}

func TestShared(t *testing.T) {
	tests := []struct {
		filter, group, inner string
		ok                   bool
	}{
		{"$share/g/a/b", "g", "a/b", true}, // [MQTT-4.8.2-1]
		{"$share/g/#", "g", "#", true},     // [MQTT-4.8.2-1]
		{"$share/g//", "g", "/", true},     // [MQTT-4.8.2-2]
		{"$share/g/$share/h/a", "g", "$share/h/a", true},
		{"$share/a.b-c/x", "a.b-c", "x", true}, // [MQTT-4.8.2-2]
		{"a/b", "", "", false},                 // not shared
		{"$share", "", "", false},              // not shared
		{"$SHARE/g/a", "", "", false},          // the prefix is case-sensitive
		{"$share/g", "", "", false},            // no filter [MQTT-4.8.2-2]
		{"$share//a", "", "", false},           // empty share name [MQTT-4.8.2-1]
		{"$share/g+/a", "", "", false},         // [MQTT-4.8.2-2]
		{"$share/g/a#", "", "", false},         // invalid inner filter [MQTT-4.7.1-2]
	}
	for _, tt := range tests {
		g, in, ok := topic.Shared(tt.filter)
		if g != tt.group || in != tt.inner || ok != tt.ok {
			t.Errorf("Shared(%q) = %q, %q, %v, want %q, %q, %v", tt.filter, g, in, ok, tt.group, tt.inner, tt.ok)
		}
	}
}

func TestOverlapSubsumes(t *testing.T) {
	tests := []struct {
		a, b       string
		overlap    bool
		aSubsumesB bool
		bSubsumesA bool
	}{
		{"a/b", "a/b", true, true, true},
		{"a/b", "a/c", false, false, false},
		{"#", "queue/#", true, true, false},                   // [MQTT-4.7.1-2]
		{"sensor/+/temp", "sensor/1/#", true, false, false},   // "sensor/1/temp"
		{"sensor/+/temp", "sensor/1/temp", true, true, false}, // [MQTT-4.7.1-3]
		{"a/#", "a", true, true, false},                       // parent level [MQTT-4.7.1-2]
		{"a/+", "a", false, false, false},                     // [MQTT-4.7.1-3]
		{"a/+/#", "a/#", true, false, true},                   // "a" matches only a/# [MQTT-4.7.1-2]
		{"+/+", "#", true, false, true},                       // [MQTT-4.7.1-3]
		{"+", "/", false, false, false},                       // [MQTT-4.7.1-3]
		{"+/+", "/", true, true, false},                       // [MQTT-4.7.1-3]
		{"a/b/c", "a/b", false, false, false},
		{"a/b/#", "a/+/c/+", true, false, false}, // "a/b/c/x"
		{"+/b", "a/+", true, false, false},       // "a/b"
		{"#", "+", true, true, false},
		{"#", "#", true, true, true},
		{"#", "$SYS/#", false, false, false},               // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false, false, false},             // [MQTT-4.7.2-1]
		{"+/#", "#", true, true, true},                     // [MQTT-4.7.2-1] both exclude '$' names; "+/#" matches "a"
		{"$SYS/#", "$SYS/+", true, true, false},            // [MQTT-4.7.2-1]
		{"a/#", "a/$x", true, true, false},                 // '$' only matters in the first level [MQTT-4.7.2-1]
		{"/#", "+", false, false, false},                   // "/#" matches its parent only as "", not a name [MQTT-4.7.3-1]
		{"/#", "/+/#", true, true, true},                   // both match exactly the names starting with "/" [MQTT-4.7.3-1]
		{"/#", "+/#", true, false, true},                   // "/a"; only the second matches "a"
		{"$share/g/a/#", "a/b", true, true, false},         // shared filters act as their inner filter [MQTT-4.8.2-1]
		{"$share/g/a/#", "$share/h/a/#", true, true, true}, // [MQTT-4.8.2-1]
		{"a/b#", "a/#", false, false, false},               // invalid [MQTT-4.7.1-2]
		{"", "#", false, false, false},                     // invalid [MQTT-4.7.3-1]
	}
	for _, tt := range tests {
		if got := topic.Overlap(tt.a, tt.b); got != tt.overlap {
			t.Errorf("Overlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.overlap)
		}
		if got := topic.Overlap(tt.b, tt.a); got != tt.overlap {
			t.Errorf("Overlap(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.overlap)
		}
		if got := topic.Subsumes(tt.a, tt.b); got != tt.aSubsumesB {
			t.Errorf("Subsumes(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.aSubsumesB)
		}
		if got := topic.Subsumes(tt.b, tt.a); got != tt.bSubsumesA {
			t.Errorf("Subsumes(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.bSubsumesA)
		}
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		filter, prefix string
		wildcard       bool
	}{
		{"sensor/+/t", "sensor", true},
		{"a/b/#", "a/b", true},
		{"#", "", true},
		{"+", "", true},
		{"+/x", "", true},
		{"/+", "", true},
		{"a//+", "a/", true},
		{"a/b", "a/b", false},
		{"/", "/", false},
		{"$SYS/+", "$SYS", true},
		{"$share/g/a/+/c", "a", true},
		{"$share/g/a/b", "a/b", false},
		{"a/b#", "", false}, // invalid
	}
	for _, tt := range tests {
		if got := topic.Prefix(tt.filter); got != tt.prefix {
			t.Errorf("Prefix(%q) = %q, want %q", tt.filter, got, tt.prefix)
		}
		if got := topic.HasWildcard(tt.filter); got != tt.wildcard {
			t.Errorf("HasWildcard(%q) = %v, want %v", tt.filter, got, tt.wildcard)
		}
	}
}

// TestPrefixBoundsMatches checks the promise of the package doc: a filter with a non-empty prefix p matches only p itself
// (and only for an exact filter or p+"/#") and names starting with p+"/".
func TestPrefixBoundsMatches(t *testing.T) {
	filters := []string{"a", "a/b", "a/+", "a/#", "a/+/c", "a//+", "a/b/#", "/#", "/+", "+/b", "#", "$share/g/a/#", "a/", "$x/+"}
	names := []string{"a", "a/", "a/b", "a/b/c", "a//b", "a//", "/", "/a", "ab", "ab/c", "b", "$x", "$x/y", "a/c", "a/bc"}
	for _, f := range filters {
		p := topic.Prefix(f)
		_, inner, shared := topic.Shared(f)
		if !shared {
			inner = f
		}
		for _, n := range names {
			if !topic.Match(f, n) || p == "" {
				continue
			}
			switch {
			case n == p:
				if topic.HasWildcard(f) && inner != p+"/#" {
					t.Errorf("Match(%q, %q): the name equals Prefix %q but the filter is neither exact nor %q", f, n, p, p+"/#")
				}
			case !strings.HasPrefix(n, p+"/"):
				t.Errorf("Match(%q, %q) but the name does not start with Prefix %q + \"/\"", f, n, p)
			}
		}
	}
}
