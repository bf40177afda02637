package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Namespace starts the name of every metric of this package.
const Namespace = "mqttpersist"

// Collector is a prometheus.Collector of a Router's rule counters and of
// its pipelines' store counters, read at scrape time. It is safe for
// concurrent use.
type Collector struct {
	router *persist.Router

	ruleMatched, ruleWritten, ruleFailed *prometheus.Desc

	storeWritten, storeFailed, storeRetried, storeDropped *prometheus.Desc
	storeQueued, storeOutboxBytes, storeUp                *prometheus.Desc
	storeBatch, storeLatency                              *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns a Collector of r's counters; register it with a
// prometheus.Registerer (or use Register).
func New(r *persist.Router) *Collector {
	rule := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "rule", name), help, []string{"rule"}, nil)
	}
	store := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "store", name), help, []string{"store", "mode"}, nil)
	}
	return &Collector{
		router:      r,
		ruleMatched: rule("matched_total", "Items (messages, acks, subscriptions, clients) routed to the rule."),
		ruleWritten: rule("written_total", "Items of the rule its store accepted."),
		ruleFailed:  rule("failed_total", "Items of the rule whose store call failed."),

		storeWritten:     store("written_total", "Items (messages, acks, retained messages) the store took."),
		storeFailed:      store("failed_total", "Items the store refused with a permanent error."),
		storeRetried:     store("retried_total", "Items of store calls retried after a retryable error."),
		storeDropped:     store("dropped_total", "Items dropped from a full outbox (overflow drop-oldest)."),
		storeQueued:      store("queued", "Records waiting in the store's outbox."),
		storeOutboxBytes: store("outbox_bytes", "Size in bytes of the records waiting in the store's outbox."),
		storeUp:          store("up", "1 while the store takes writes, 0 while it fails with retryable errors."),
		storeBatch:       store("batch_size", "Items per store call."),
		storeLatency:     store("write_seconds", "Duration of store calls in seconds."),
	}
}

// Register registers New(r) with reg.
func Register(reg prometheus.Registerer, r *persist.Router) error {
	return reg.Register(New(r))
}

// Describe sends the descriptors of every metric the Collector makes.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.ruleMatched, c.ruleWritten, c.ruleFailed,
		c.storeWritten, c.storeFailed, c.storeRetried, c.storeDropped,
		c.storeQueued, c.storeOutboxBytes, c.storeUp, c.storeBatch, c.storeLatency,
	} {
		ch <- d
	}
}

// Collect reads Router.Stats and every pipeline's Stats and sends them as
// metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, s := range c.router.Stats() {
		name := s.Name
		if seen[name] {
			name += "#" + strconv.Itoa(s.Index)
		}
		seen[name] = true
		counter(ch, c.ruleMatched, s.Matched, name)
		counter(ch, c.ruleWritten, s.Written, name)
		counter(ch, c.ruleFailed, s.Failed, name)
	}
	for _, p := range c.router.Pipelines() {
		s := p.Stats()
		lv := []string{s.Name, s.Mode.String()}
		counter(ch, c.storeWritten, s.Written, lv...)
		counter(ch, c.storeFailed, s.Failed, lv...)
		counter(ch, c.storeRetried, s.Retried, lv...)
		counter(ch, c.storeDropped, s.Dropped, lv...)
		ch <- prometheus.MustNewConstMetric(c.storeQueued, prometheus.GaugeValue, float64(s.Queued), lv...)
		ch <- prometheus.MustNewConstMetric(c.storeOutboxBytes, prometheus.GaugeValue, float64(s.OutboxBytes), lv...)
		up := 0.0
		if s.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.storeUp, prometheus.GaugeValue, up, lv...)
		ch <- histogram(c.storeBatch, s.Batch, lv)
		ch <- histogram(c.storeLatency, s.Latency, lv)
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, lv ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
}

// histogram turns a persist.Histogram (cumulative counts per bound) into a
// constant Prometheus histogram.
func histogram(d *prometheus.Desc, h persist.Histogram, lv []string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, lv...)
}
