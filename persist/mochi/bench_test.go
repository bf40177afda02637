package mochi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
)

// BenchmarkPublishDeliver measures QoS 1 messages published by 4 clients
// and delivered to one persistent QoS 1 subscriber, through a broker with
// no persistence ("none") and with the Hook on SQLite and PostgreSQL;
// compare the msgs/s of the sub-benchmarks.
func BenchmarkPublishDeliver(b *testing.B) {
	for _, c := range []struct {
		name string
		db   func(b *testing.B) *db
	}{
		{"none", func(*testing.B) *db { return nil }},
		{"sqlite", func(b *testing.B) *db { d := sqliteDB(b); return &d }},
		{"postgres", func(b *testing.B) *db { return &db{name: "postgres", url: testenv.PostgresURL(b)} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var store persist.Store
			if d := c.db(b); d != nil {
				r, _ := d.open(b)
				store = r
			}
			br := startBroker(b, store, nil, nil)
			sub := dial(b, br.addr, "bench-sub", connOpts{Expiry: 3600})
			sub.Subscribe("bench/#", 1)
			var pubs []*client
			for i := range 4 {
				pubs = append(pubs, dial(b, br.addr, fmt.Sprintf("bench-pub-%d", i), connOpts{Clean: true}))
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, p := range pubs {
				wg.Go(func() {
					for j := i; j < b.N; j += len(pubs) {
						p.Publish(fmt.Sprintf("bench/%d", i), []byte("payload-payload-payload"), 1, false)
					}
				})
			}
			wg.Wait()
			sub.WaitFor(b.N, 5*time.Minute, 0)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
