package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// BenchmarkModes measures publish→deliver throughput of QoS 1 messages
// (about 20,000 of 64 bytes, split across 1, 10 and 100 publishers, each
// waiting for its PUBACKs, to one persistent QoS 1 subscriber) through the
// broker process with no persistence and with PostgreSQL and Redis in
// -mode durable and -mode async, in one run. It reports msgs/s, the ratio
// to no persistence with the same number of publishers, and the mean
// batch size of the store calls from /metrics. Run it with -benchtime=1x.
//
// The batch size histogram counts every store call of the pipeline, the
// subscriber's ack records (Acked, in batches of up to 256 per connection)
// as well as the publishes, so "batch" is items per call of both;
// "pubbatch" is a lower bound of the publish batches alone: the items that
// were not acks over all calls.
func BenchmarkModes(b *testing.B) {
	const total = 20000
	type result struct{ rate, batch, pubBatch float64 }
	results := map[string]result{}
	for _, pubs := range []int{1, 10, 100} {
		runs := []struct {
			name, mode string
			url        func(b *testing.B) string
		}{
			{"none", "", func(*testing.B) string { return "none" }},
			{"postgres-durable", "durable", func(b *testing.B) string { return testenv.PostgresURL(b) }},
			{"postgres-async", "async", func(b *testing.B) string { return testenv.PostgresURL(b) }},
			{"redis-durable", "durable", func(b *testing.B) string { return redisURL(b) }},
			{"redis-async", "async", func(b *testing.B) string { return redisURL(b) }},
		}
		for _, run := range runs {
			key := fmt.Sprintf("pubs=%d/%s", pubs, run.name)
			b.Run(key, func(b *testing.B) {
				var res result
				for range b.N {
					args := []string{"-store", run.url(b)}
					if run.mode != "" {
						args = append(args, "-mode", run.mode, "-outbox", filepath.Join(b.TempDir(), "outbox"), "-metrics", "127.0.0.1:0")
					}
					br := startBroker(b, args...)
					r, err := mqtttest.Load(context.Background(), mqtttest.LoadOptions{
						Addr: br.addr, Publishers: pubs, Messages: total / pubs, QoS: 1, Payload: 64,
						Subscriber: testenv.FreshName("bench-"), Timeout: 5 * time.Minute,
					})
					if err != nil {
						br.stop()
						b.Fatal(err)
					}
					if r.Published != total || r.Missing != 0 || r.Duplicates != 0 {
						br.stop()
						b.Fatalf("%s: %v", key, r)
					}
					res.rate += r.Rate()
					if run.mode != "" {
						m, queued := modeMetrics(b, br, run.mode)
						calls, items := m["batch_size_count"], m["batch_size_sum"]
						if calls > 0 {
							res.batch += items / calls
							res.pubBatch += (items - m["acked"]) / calls
						}
						b.Logf("%s: %v; store calls %.0f for %.0f items (%.0f acks); %d records in the outbox when the load ended; delivered live %.0f, from the store %.0f, spilled %.0f",
							key, r, calls, items, m["acked"], queued, m["live"], m["replayed"], m["spilled"])
					}
					br.stop()
				}
				n := float64(b.N)
				res = result{res.rate / n, res.batch / n, res.pubBatch / n}
				results[key] = res
				b.ReportMetric(res.rate, "msgs/s")
				base := results[fmt.Sprintf("pubs=%d/none", pubs)].rate
				if run.mode == "" || base == 0 {
					b.Logf("%3d publishers, %-16s %6.0f msgs/s", pubs, run.name, res.rate)
					return
				}
				b.ReportMetric(res.rate/base, "x_none")
				b.ReportMetric(res.batch, "batch")
				b.ReportMetric(res.pubBatch, "pubbatch")
				// (Logs of a benchmark with sub-benchmarks show only with -v,
				// so each sub-benchmark says its own ratio.)
				b.Logf("%3d publishers, %-16s %6.0f msgs/s = %.2f × no persistence (%.0f msgs/s); mean batch %.1f items per store call (publishes ≥ %.1f)",
					pubs, run.name, res.rate, res.rate/base, base, res.batch, res.pubBatch)
			})
		}
	}
}

// modeMetrics returns the pipeline's batch size sum and count and the
// hook's acked, live, replayed and spilled counts once the outbox is empty
// (at once in durable mode), and how many records the outbox held when
// called.
func modeMetrics(b *testing.B, br *broker, mode string) (map[string]float64, int) {
	b.Helper()
	labels := `{mode="` + mode + `",store="default"}`
	m := br.scrape(b)
	queued := int(m["mqttpersist_store_queued"+labels])
	deadline := time.Now().Add(waitLong)
	for m["mqttpersist_store_queued"+labels] > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("the outbox did not drain in %v: %v records left", waitLong, m["mqttpersist_store_queued"+labels])
		}
		time.Sleep(100 * time.Millisecond)
		m = br.scrape(b)
	}
	if f := m["mqttpersist_store_failed_total"+labels]; f != 0 {
		b.Errorf("%v store items failed", f)
	}
	return map[string]float64{
		"batch_size_sum":   m["mqttpersist_store_batch_size_sum"+labels],
		"batch_size_count": m["mqttpersist_store_batch_size_count"+labels],
		"acked":            m["mqttpersist_broker_acked_total"],
		"live":             m["mqttpersist_broker_live_total"],
		"replayed":         m["mqttpersist_broker_replayed_total"],
		"spilled":          m["mqttpersist_broker_spilled_total"],
	}, queued
}
