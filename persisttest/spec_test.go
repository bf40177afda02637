package persisttest

import (
	"testing"

	"github.com/mqttpersist/mqttpersist/topic"
)

// TestWildCases checks the hand-written expectations of the wildcard cases
// against the suite's spec matcher and the topic package, and the invalid
// names and filters against topic's validation.
func TestWildCases(t *testing.T) {
	for _, c := range wildCases {
		for _, name := range wildTopics {
			listed := contains(c.want, name)
			if got := specMatch(c.filter, name); got != listed {
				t.Errorf("%s: specMatch(%q, %q) = %v, listed %v", c.name, c.filter, name, got, listed)
			}
			if got := topic.Match(c.filter, name); got != listed {
				t.Errorf("%s: topic.Match(%q, %q) = %v, listed %v", c.name, c.filter, name, got, listed)
			}
		}
		for _, w := range c.want {
			if !contains(wildTopics, w) {
				t.Errorf("%s: %q is not published", c.name, w)
			}
		}
	}
	for _, n := range invalidNames {
		if topic.ValidateName(n.value) == nil {
			t.Errorf("invalid name %s %q is valid to package topic", n.name, n.value)
		}
	}
	for _, f := range invalidFilters {
		if topic.ValidateFilter(f.value) == nil {
			t.Errorf("invalid filter %s %q is valid to package topic", f.name, f.value)
		}
	}
	for _, a := range awkward {
		if err := topic.ValidateName(a.value); err != nil {
			t.Errorf("awkward topic %s: %v", a.name, err)
		}
	}
	for _, name := range wildTopics {
		if err := topic.ValidateName(name); err != nil {
			t.Errorf("wildcard topic: %v", err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
