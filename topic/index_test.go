package topic_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mqttpersist/mqttpersist/topic"
)

// indexFilters is a mix of filters; the value of each is its position.
var indexFilters = []string{
	"a/b/c",        // 0
	"a/+/c",        // 1
	"a/#",          // 2
	"#",            // 3
	"+/b/+",        // 4
	"a/b",          // 5
	"a//c",         // 6
	"$SYS/#",       // 7
	"$SYS/+/load",  // 8
	"+/+",          // 9
	"$share/g/a/#", // 10
	"/#",           // 11
	"+",            // 12
	"a/b/c/#",      // 13
	"+/#",          // 14
}

func TestIndexMatch(t *testing.T) {
	ix := topic.NewIndex[int]()
	for i, f := range indexFilters {
		if err := ix.Add(f, i); err != nil {
			t.Fatalf("Add(%q) = %v", f, err)
		}
	}
	tests := []struct {
		name string
		want []int
	}{
		{"a/b/c", []int{0, 1, 2, 3, 4, 10, 13, 14}}, // parent of a/b/c/# [MQTT-4.7.1-2]
		{"a", []int{2, 3, 10, 12, 14}},              // "a/#" matches "a" [MQTT-4.7.1-2]
		{"a/b", []int{2, 3, 5, 9, 10, 14}},          // [MQTT-4.7.1-3]
		{"a//c", []int{1, 2, 3, 6, 10, 14}},         // '+' matches an empty level [MQTT-4.7.1-3]
		{"x/b/", []int{3, 4, 14}},                   // [MQTT-4.7.1-3]
		{"/", []int{3, 9, 11, 14}},                  // [MQTT-4.7.1-2]
		{"$SYS/cpu/load", []int{7, 8}},              // no '#' or '+/+' for '$' names [MQTT-4.7.2-1]
		{"$SYS", []int{7}},                          // [MQTT-4.7.2-1]
		{"b", []int{3, 12, 14}},                     // [MQTT-4.7.1-3]
		{"a/+", nil},                                // invalid name [MQTT-3.3.2-2]
		{"", nil},                                   // invalid name [MQTT-4.7.3-1]
		{"$other", nil},                             // [MQTT-4.7.2-1]
		{"c/d/e/f", []int{3, 14}},                   // [MQTT-4.7.1-2]
	}
	for _, tt := range tests {
		got := ix.Match(tt.name)
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %v, want %v", tt.name, got, tt.want)
		}
		// The index agrees with the plain function.
		var brute []int
		for i, f := range indexFilters {
			if topic.Match(f, tt.name) {
				brute = append(brute, i)
			}
		}
		if !slices.Equal(got, brute) {
			t.Errorf("Match(%q) = %v, but topic.Match finds %v", tt.name, got, brute)
		}
	}
}

func TestIndexAddRemove(t *testing.T) {
	ix := topic.NewIndex[string]()
	mustAdd := func(f, v string) {
		t.Helper()
		if err := ix.Add(f, v); err != nil {
			t.Fatalf("Add(%q, %q) = %v", f, v, err)
		}
	}
	mustAdd("a/+/c", "x")
	mustAdd("a/+/c", "x") // the same pair is stored once
	mustAdd("a/+/c", "y")
	mustAdd("a/b/c", "x")
	mustAdd("$share/g/a/+/c", "x") // a different filter, although it matches the same names
	if got := ix.Len(); got != 4 {
		t.Fatalf("Len() = %d after adding 4 distinct pairs, want 4", got)
	}
	got := ix.Match("a/b/c")
	slices.Sort(got)
	if want := []string{"x", "x", "x", "y"}; !slices.Equal(got, want) {
		t.Fatalf(`Match("a/b/c") = %q, want %q`, got, want)
	}

	if ix.Remove("a/+/c", "z") {
		t.Error(`Remove("a/+/c", "z") = true for a value never added`)
	}
	if ix.Remove("a/+/d", "x") {
		t.Error(`Remove("a/+/d", "x") = true for a filter never added`)
	}
	if ix.Remove("a/#", "x") {
		t.Error(`Remove("a/#", "x") = true for a filter never added`)
	}
	if ix.Remove("a/b#", "x") {
		t.Error(`Remove("a/b#", "x") = true for an invalid filter`)
	}
	if !ix.Remove("a/+/c", "x") {
		t.Fatal(`Remove("a/+/c", "x") = false for a stored pair`)
	}
	if ix.Remove("a/+/c", "x") {
		t.Error(`second Remove("a/+/c", "x") = true`)
	}
	if got := ix.Len(); got != 3 {
		t.Errorf("Len() = %d after removing one of 4 pairs, want 3", got)
	}
	var pairs []string
	ix.Each("a/q/c", func(f, v string) bool {
		pairs = append(pairs, f+"="+v)
		return true
	})
	slices.Sort(pairs)
	if want := []string{"$share/g/a/+/c=x", "a/+/c=y"}; !slices.Equal(pairs, want) {
		t.Errorf(`Each("a/q/c") visits %q, want %q (shared filters reported as added)`, pairs, want)
	}

	// Removing everything leaves an empty index that still works.
	for _, p := range [][2]string{{"a/+/c", "y"}, {"a/b/c", "x"}, {"$share/g/a/+/c", "x"}} {
		if !ix.Remove(p[0], p[1]) {
			t.Errorf("Remove(%q, %q) = false for a stored pair", p[0], p[1])
		}
	}
	if got := ix.Len(); got != 0 {
		t.Errorf("Len() = %d after removing everything, want 0", got)
	}
	if got := ix.Match("a/b/c"); got != nil {
		t.Errorf(`Match("a/b/c") on an emptied index = %q, want nil`, got)
	}
	mustAdd("a/b/c", "again")
	if got := ix.Match("a/b/c"); !slices.Equal(got, []string{"again"}) {
		t.Errorf(`Match("a/b/c") after re-adding = %q, want ["again"]`, got)
	}
}

func TestIndexAddInvalid(t *testing.T) {
	ix := topic.NewIndex[int]()
	for _, f := range []string{"", "a/b#", "a/#/b", "+a", "$share/g", "$share//a", "a/\x00", "\xff"} {
		err := ix.Add(f, 1)
		var te *topic.Error
		if !errors.Is(err, topic.ErrInvalid) || !errors.As(err, &te) || te.Topic != f || !te.Filter {
			t.Errorf("Add(%q) = %v, want a *topic.Error for the filter", f, err)
		}
	}
	if ix.Len() != 0 {
		t.Errorf("Len() = %d after only invalid Adds, want 0", ix.Len())
	}
}

func TestIndexManyValuesPerFilter(t *testing.T) {
	// Enough values on one filter to exercise the set's map index.
	ix := topic.NewIndex[int]()
	const n = 50
	for round := 0; round < 2; round++ {
		for i := 0; i < n; i++ {
			if err := ix.Add("a/#", i); err != nil {
				t.Fatal(err)
			}
			if err := ix.Add("a/b", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ix.Len() != 2*n {
		t.Fatalf("Len() = %d, want %d", ix.Len(), 2*n)
	}
	for i := 0; i < n; i += 2 {
		if !ix.Remove("a/#", i) {
			t.Fatalf(`Remove("a/#", %d) = false`, i)
		}
	}
	got := ix.Match("a/b")
	slices.Sort(got)
	var want []int
	for i := 0; i < n; i++ {
		want = append(want, i)
		if i%2 == 1 {
			want = append(want, i)
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf(`Match("a/b") = %v, want %v`, got, want)
	}
}

func TestIndexEachStops(t *testing.T) {
	ix := topic.NewIndex[int]()
	for i, f := range []string{"#", "a/#", "a/+", "+/b", "a/b"} {
		if err := ix.Add(f, i); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	ix.Each("a/b", func(string, int) bool {
		calls++
		return calls < 2
	})
	if calls != 2 {
		t.Errorf("Each called fn %d times after it returned false on call 2, want 2", calls)
	}
}

func TestIndexEachDoesNotAllocate(t *testing.T) {
	ix := topic.NewIndex[int]()
	for i, f := range indexFilters {
		if err := ix.Add(f, i); err != nil {
			t.Fatal(err)
		}
	}
	sum := 0
	fn := func(_ string, v int) bool { sum += v; return true }
	allocs := testing.AllocsPerRun(100, func() { ix.Each("a/b/c", fn) })
	if allocs != 0 {
		t.Errorf("Each allocates %v times per run, want 0", allocs)
	}
	if sum == 0 {
		t.Error("Each found nothing")
	}
}

func TestIndexConcurrent(t *testing.T) {
	ix := topic.NewIndex[int]()
	if err := ix.Add("s/#", -1); err != nil {
		t.Fatal(err)
	}
	const writers, per = 4, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				f := fmt.Sprintf("s/%d/+/%d", w, i)
				if err := ix.Add(f, i); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 && !ix.Remove(f, i) {
					t.Errorf("Remove(%q) = false", f)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				// The "s/#" filter is never removed, so every lookup finds it.
				if got := ix.Match(fmt.Sprintf("s/%d/x/%d", w, i)); !slices.Contains(got, -1) {
					t.Errorf("Match during writes = %v, missing the permanent filter", got)
					return
				}
				ix.Len()
			}
		}()
	}
	wg.Wait()
	if got, want := ix.Len(), 1+writers*per/2; got != want {
		t.Errorf("Len() = %d after concurrent adds and removes, want %d", got, want)
	}
	if got := ix.Match("s/1/x/3"); len(got) != 2 {
		t.Errorf(`Match("s/1/x/3") = %v, want the permanent filter and "s/1/+/3"`, got)
	}
}

func TestIndexManyChildren(t *testing.T) {
	// Enough literal levels under one node to move its children from a slice to a map, then remove most again.
	ix := topic.NewIndex[int]()
	var filters []string
	for i := 0; i < 30; i++ {
		filters = append(filters, fmt.Sprintf("x/%d", i), fmt.Sprintf("x/%d/#", i), fmt.Sprintf("+/%d", i))
	}
	for i, f := range filters {
		if err := ix.Add(f, i); err != nil {
			t.Fatal(err)
		}
	}
	removed := map[int]bool{}
	for i, f := range filters {
		if i%4 != 0 {
			if !ix.Remove(f, i) {
				t.Fatalf("Remove(%q, %d) = false", f, i)
			}
			removed[i] = true
		}
	}
	for i := 0; i < 32; i++ {
		for _, name := range []string{fmt.Sprintf("x/%d", i), fmt.Sprintf("x/%d/y", i), fmt.Sprintf("y/%d", i)} {
			got := ix.Match(name)
			slices.Sort(got)
			var want []int
			for j, f := range filters {
				if !removed[j] && topic.Match(f, name) {
					want = append(want, j)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("Match(%q) = %v, want %v", name, got, want)
			}
		}
	}
}
