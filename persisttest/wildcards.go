package persisttest

import (
	"slices"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

// wildTopics are published in this order (so ID order is this order, which
// is not topic order) for the wildcard cases.
var wildTopics = []string{
	"sensor/1/temp",
	"sensor/2/temp",
	"sensor/1/hum",
	"sensor/1/tempX",
	"sensorX/1/temp",
	"sensor/1/2/temp",
	"sensor//temp",
	"sensor/1/temp/x",
	"a",
	"a/b",
	"a/b/c",
	"ab",
	"A/b",
	"a/",
	"/a",
	"$SYS/x",
	"$SYS/a/temp",
	"x_y/1",
	"xzy/1",
	"x%y/1",
	`x\y/1`,
	"x.y/1",
	"x*y/1",
	"x[y]/1",
	"xy/1",
	"x y/1",
}

// wildCases are filters and the topics (of wildTopics) they match.
var wildCases = []struct {
	name, filter string
	want         []string
}{
	{"plus in the middle", "sensor/+/temp", []string{"sensor/1/temp", "sensor/2/temp", "sensor//temp"}}, // '+' matches an empty level
	{"hash", "sensor/#", []string{"sensor/1/temp", "sensor/2/temp", "sensor/1/hum", "sensor/1/tempX", "sensor/1/2/temp", "sensor//temp", "sensor/1/temp/x"}},
	{"plus first", "+/+/temp", []string{"sensor/1/temp", "sensor/2/temp", "sensorX/1/temp", "sensor//temp"}}, // not $SYS/a/temp [MQTT-4.7.2-1]
	{"hash matches the parent", "a/#", []string{"a", "a/b", "a/b/c", "a/"}},                                  // [MQTT-4.7.1-2]
	{"plus last", "a/+", []string{"a/b", "a/"}},
	{"plus alone", "+", []string{"a", "ab"}},
	{"plus before a level", "+/a", []string{"/a"}},
	{"hash alone", "#", without(wildTopics, "$SYS/x", "$SYS/a/temp")}, // [MQTT-4.7.2-1]
	{"dollar hash", "$SYS/#", []string{"$SYS/x", "$SYS/a/temp"}},
	{"dollar plus", "$SYS/+/temp", []string{"$SYS/a/temp"}},
	{"exact", "sensor/1/temp", []string{"sensor/1/temp"}},
	{"exact is case-sensitive", "a/b", []string{"a/b"}},
	{"exact upper case", "A/b", []string{"A/b"}},
	{"exact with space", "x y/1", []string{"x y/1"}},
	{"no match", "sensor/+", nil},
	{"LIKE underscore", "x_y/+", []string{"x_y/1"}},
	{"LIKE percent", "x%y/+", []string{"x%y/1"}},
	{"backslash", `x\y/#`, []string{`x\y/1`}},
	{"regex dot", "x.y/1", []string{"x.y/1"}},
	{"glob star", "x*y/+", []string{"x*y/1"}},
	{"glob class", "x[y]/+", []string{"x[y]/1"}},
	{"plus over special characters", "+/1", []string{"x_y/1", "xzy/1", "x%y/1", `x\y/1`, "x.y/1", "x*y/1", "x[y]/1", "xy/1", "x y/1"}},
}

func without(all []string, drop ...string) []string {
	var out []string
next:
	for _, s := range all {
		for _, d := range drop {
			if s == d {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// testWildcards publishes wildTopics to a fresh store per filter and mode
// and fetches with the filter: every matching message, in ID order, and
// nothing else.
func (s *suite) testWildcards(t *testing.T) {
	s.eachMode(t, func(t *testing.T, mode persist.Mode) {
		for _, c := range wildCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				st := s.store(t)
				var all []*persist.Message
				for _, topic := range wildTopics {
					m := NewMessage(topic, []byte(topic))
					m.Mode = mode
					all = append(all, m)
				}
				publish(t, st, all...)
				// Expect them in publish order, which is ID order.
				var want []*persist.Message
				for _, m := range all {
					if slices.Contains(c.want, m.Topic) {
						want = append(want, m)
					}
				}
				got := fetch(t, st, s.uniq("reader"), c.filter, persist.Fetch{Mode: mode})
				sameIDs(t, "FetchOffline("+c.filter+")", got, want)
			})
		}
	})
}
