package memstore_test

import (
	"testing"

	"github.com/mqttpersist/mqttpersist/memstore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

// TestConformance runs the conformance suite against the reference store,
// with MQTT's limits and with smaller ones.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		opts *memstore.Options
	}{
		{"Default", nil},
		{"Limited", &memstore.Options{Limits: persist.Limits{ClientID: 1000, Topic: 1024, Text: 1000, ID: 64, Payload: 1 << 16}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			persisttest.Run(t, persisttest.Harness{New: func(t testing.TB) persist.Store {
				s := memstore.NewWithOptions(c.opts)
				t.Cleanup(func() { _ = s.Close() })
				return s
			}})
		})
	}
}

func BenchmarkConformance(b *testing.B) {
	persisttest.Bench(b, persisttest.Harness{New: func(testing.TB) persist.Store { return memstore.New() }})
}
