package sqlstore

import (
	"testing"
	"time"
)

// spans names a node only for a run of positions its recorded batches
// hold, every one of them.
func TestSpans(t *testing.T) {
	var sp spans
	sp.add("t", "a", 3, 3)  // 1..3
	sp.add("t", "a", 5, 2)  // 4..5, merged
	sp.add("t", "b", 6, 1)  // 6
	sp.add("t", "a", 10, 2) // 9..10 (7..8 another store's)
	sp.add("t", "a", 8, 1)  // 8, committed late
	sp.add("u", "", 4, 4)   // several nodes' batch: not recorded
	for _, c := range []struct {
		topic    string
		from, to int64
		want     string
	}{
		{"t", 0, 3, "a"},
		{"t", 0, 5, "a"},
		{"t", 2, 5, "a"},
		{"t", 4, 5, "a"},
		{"t", 3, 6, ""}, // b's 6
		{"t", 5, 6, "b"},
		{"t", 5, 8, ""}, // 7 unknown
		{"t", 7, 10, "a"},
		{"t", 8, 10, "a"},
		{"t", 9, 11, ""}, // 11 not recorded
		{"u", 0, 4, ""},
		{"v", 0, 1, ""},
	} {
		if got := sp.node(c.topic, c.from, c.to, sp.mark(), time.Now().Add(spanWait)); got != c.want {
			t.Errorf("node(%s, %d, %d) = %q, want %q", c.topic, c.from, c.to, got, c.want)
		}
	}
	// A Publish that began before the mark and has not said what it took
	// is waited for: its commit may be what the poll read.
	end := sp.begin()
	mark := sp.mark()
	go func() {
		time.Sleep(20 * time.Millisecond)
		sp.add("t", "a", 12, 2)
		end()
	}()
	if got := sp.node("t", 10, 12, mark, time.Now().Add(spanWait)); got != "a" {
		t.Errorf("node(t, 10, 12) while the Publish that took 11..12 was in flight = %q, want a", got)
	}
	// One that began after the mark is not: the poll did not see it.
	later := sp.begin()
	defer later()
	start := time.Now()
	if got := sp.node("t", 12, 13, mark, time.Now().Add(spanWait)); got != "" || time.Since(start) >= spanWait*3/4 {
		t.Errorf("node(t, 12, 13) = %q after %v, want \"\" at once", got, time.Since(start))
	}
}
