package storekit_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

func TestFilters(t *testing.T) {
	var f storekit.Filters
	if f.Matches("a/b") {
		t.Error("an empty set matches a/b")
	}
	if got := f.Add("a/+", "a/+", "$share/g/x/#", "x/#"); !slices.Equal(got, []string{"a/+", "x/#"}) {
		t.Errorf("Add returned %q, want the newly watched inner filters [a/+ x/#]", got)
	}
	for name, want := range map[string]bool{"a/b": true, "x": true, "x/y/z": true, "b/a": false} {
		if f.Matches(name) != want {
			t.Errorf("Matches(%q) = %v, want %v", name, !want, want)
		}
	}
	if got := f.Remove("a/+", "never/added", "bad/#/x"); len(got) != 0 {
		t.Errorf("one Remove of a filter added twice, and unwatched ones: returned %q, want none gone", got)
	}
	if !f.Matches("a/b") {
		t.Error("a/+ added twice and removed once no longer matches")
	}
	if got := f.Remove("a/+", "x/#"); !slices.Equal(got, []string{"a/+"}) {
		t.Errorf("Remove returned %q, want [a/+] (x/# was added twice, once shared)", got)
	}
	if got := f.Remove("$share/h/x/#"); !slices.Equal(got, []string{"x/#"}) {
		t.Errorf("Remove of the shared form returned %q, want [x/#]", got)
	}
	if f.Matches("a/b") || f.Matches("x/y") || len(f.List()) != 0 {
		t.Errorf("all removed, still watched: %q", f.List())
	}
}

func TestKitWatch(t *testing.T) {
	k := newKit()
	if err := k.Watch(t.Context(), "Watch.Add", []string{"ok/t", "a/#/b"}); !errors.Is(err, persist.ErrInvalid) ||
		!strings.HasPrefix(err.Error(), "teststore: Watch.Add filter 1: ") {
		t.Errorf("an invalid second filter: %v, want ErrInvalid naming the store, the op and filter 1", err)
	}
	if err := k.Watch(t.Context(), "Watch.Remove", nil); err != nil {
		t.Errorf("Watch.Remove on an open store: %v", err)
	}
	var ws storekit.Watches
	c := &closer{}
	if !ws.Add(k, c) {
		t.Fatal("Add on an open store reported closed")
	}
	k.Close()
	if err := k.Watch(t.Context(), "Watch.Add", []string{"ok/t"}); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("on a closed store: %v, want ErrClosed", err)
	}
	if ws.Add(k, &closer{}) {
		t.Error("Add on a closed store reported open")
	}
	ws.CloseAll()
	if c.n != 1 {
		t.Errorf("CloseAll closed the open watch %d times, want once", c.n)
	}
}

type closer struct{ n int }

func (c *closer) Close() error { c.n++; return nil }
