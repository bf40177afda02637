// Package metrics exports the counters of a persist.Router and of the
// pipelines it writes through as Prometheus metrics
// (github.com/prometheus/client_golang).
//
// A Collector reads Router.Stats and each Pipeline's Stats when Prometheus
// scrapes, so it costs nothing between scrapes and adds no work to the
// write path; the Router and Pipelines keep their own counters, and this
// package only translates them.
//
//	reg := prometheus.NewRegistry()
//	if err := metrics.Register(reg, router); err != nil { … }
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # Metrics
//
// Per rule (label rule: Rule.Name, or "#<index>" when unnamed), counted in
// items (messages, acks, subscriptions, clients) of the write verbs:
//
//	mqttpersist_rule_matched_total   items routed to the rule
//	mqttpersist_rule_written_total   items its store accepted
//	mqttpersist_rule_failed_total    items whose store call failed
//
// Per store (labels store: PipelineOptions.Name, and mode: durable or
// async), one set for each Router.Pipelines entry:
//
//	mqttpersist_store_written_total   items the store took
//	mqttpersist_store_failed_total    items it refused with a permanent error
//	mqttpersist_store_retried_total   items of store calls retried after a retryable error
//	mqttpersist_store_dropped_total   items dropped from a full outbox (drop-oldest)
//	mqttpersist_store_queued          records waiting in the outbox (gauge)
//	mqttpersist_store_outbox_bytes    their size in bytes (gauge)
//	mqttpersist_store_up              1, or 0 while the store fails with retryable errors (gauge)
//	mqttpersist_store_batch_size      items per store call (histogram)
//	mqttpersist_store_write_seconds   duration of store calls (histogram)
//
// The histograms' buckets are fixed, the same for every store (see
// persist.Histogram): batch sizes 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000,
// 2000 and 5000; write seconds 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
// 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 and 10.
//
// A durable pipeline has no outbox: its queued and outbox bytes are 0.
// Counters start at zero when the Router and Pipelines are created (a
// broker restart resets them, as Prometheus expects of counters); records
// an earlier run left in an outbox show in queued from the start.
//
// # Labels
//
// To put several routers in one registry, register each through
// prometheus.WrapRegistererWith(prometheus.Labels{"router": …}, reg) with
// its own value.
// Two rules with the same Name would give two series with the same labels,
// which a registry rejects; the Collector then labels the later ones
// "name#<index>".
//
// # Caveats
//
// The package reads counters and never imports a broker: to export the
// counters of an adapter such as persist/mochi's Hook.Stats, register
// prometheus.NewCounterFunc values over them (examples/broker does).
package metrics
