package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/metrics"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// openSQLite opens and migrates a fresh SQLite store, closed at cleanup.
func openSQLite(t *testing.T, name string) *sqlstore.Store {
	t.Helper()
	ctx := t.Context()
	s, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), name+".db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// down is a store whose database is unreachable: every write fails with a
// retryable error.
type down struct{ persist.Unsupported }

func (down) Events() persist.Event { return persist.OnPublish }

func (down) Publish(context.Context, ...*persist.Message) error {
	return persist.Wrap("down", "Publish", persist.ErrUnavailable, errors.New("connection refused"), true)
}

func newPipeline(t *testing.T, s persist.Store, o *persist.PipelineOptions) *persist.Pipeline {
	t.Helper()
	p, err := persist.NewPipeline(s, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// gather collects c and flattens it to `name{label="value",…}` → value;
// a histogram gives name_count, name_sum and name_bucket{…,le="…"}.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := func(name string, extra ...string) string {
				var l []string
				for _, p := range m.GetLabel() {
					l = append(l, fmt.Sprintf("%s=%q", p.GetName(), p.GetValue()))
				}
				l = append(l, extra...)
				sort.Strings(l)
				return name + "{" + strings.Join(l, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key(f.GetName())] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key(f.GetName())] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key(f.GetName()+"_count")] = float64(h.GetSampleCount())
				out[key(f.GetName()+"_sum")] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[key(f.GetName()+"_bucket", fmt.Sprintf("le=%q", fmt.Sprint(b.GetUpperBound())))] = float64(b.GetCumulativeCount())
				}
			default:
				t.Errorf("%s: unexpected type %v", f.GetName(), f.GetType())
			}
		}
	}
	return out
}

// TestCollector routes messages through a durable SQLite store, an async
// SQLite store with an outbox, a store that is down, and an async store
// that is down with a small drop-oldest outbox, and checks every metric
// against what happened.
func TestCollector(t *testing.T) {
	ctx := t.Context()
	main := newPipeline(t, openSQLite(t, "main"), &persist.PipelineOptions{Name: "main"})
	archive := newPipeline(t, openSQLite(t, "archive"), &persist.PipelineOptions{
		Name: "archive", Mode: persist.Async, Outbox: filepath.Join(t.TempDir(), "outbox")})
	quiet := slog.New(slog.DiscardHandler)
	broken := newPipeline(t, down{}, &persist.PipelineOptions{
		Name: "broken", Logger: quiet, Timeout: 200 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	// An outbox of 300 bytes holds a few of the 10 messages published
	// to it (a binary record of these is well under 100 bytes).
	lossy := newPipeline(t, down{}, &persist.PipelineOptions{
		Name: "lossy", Logger: quiet, Mode: persist.Async, OutboxBytes: 300, Overflow: persist.DropOldest,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Drain: 50 * time.Millisecond})
	router, err := persist.NewRouter(
		persist.Rule{Name: "jobs", Filter: "queue/#", Store: main, Mode: persist.Queue},
		persist.Rule{Name: "everything", Filter: "#", Store: main},
		persist.Rule{Name: "sensors", Filter: "sensors/#", Store: archive},
		persist.Rule{Filter: "broken/#", Store: broken},
		persist.Rule{Name: "lossy", Filter: "lossy/#", Store: lossy},
	)
	if err != nil {
		t.Fatal(err)
	}
	c := metrics.New(router)

	publish := func(topic string, n int) {
		t.Helper()
		for i := range n {
			err := router.Publish(ctx, &persist.Message{Topic: topic, Payload: fmt.Appendf(nil, "m%d", i), QoS: 1, From: "pub"})
			if err != nil && !strings.HasPrefix(topic, "broken/") {
				t.Fatalf("publish %s: %v", topic, err)
			}
		}
	}
	publish("queue/jobs", 3)
	publish("sensors/1/temp", 5)
	publish("broken/x", 1)
	publish("lossy/x", 10)
	deadline := time.Now().Add(30 * time.Second)
	for s := archive.Stats(); s.Queued > 0 || s.Written < 5; s = archive.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("archive did not write its outbox: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The rule counters are exact: compare them in the exposition format.
	// Every message matches everything (main); queue/jobs matches jobs
	// too (one copy in main), the others match sensors, rule 3 (unnamed:
	// "#3") and lossy. The async lossy pipeline took its 10 into the
	// outbox: the rule counts them written.
	want := `
# HELP mqttpersist_rule_matched_total Items (messages, acks, subscriptions, clients) routed to the rule.
# TYPE mqttpersist_rule_matched_total counter
mqttpersist_rule_matched_total{rule="#3"} 1
mqttpersist_rule_matched_total{rule="everything"} 19
mqttpersist_rule_matched_total{rule="jobs"} 3
mqttpersist_rule_matched_total{rule="lossy"} 10
mqttpersist_rule_matched_total{rule="sensors"} 5
# HELP mqttpersist_rule_written_total Items of the rule its store accepted.
# TYPE mqttpersist_rule_written_total counter
mqttpersist_rule_written_total{rule="#3"} 0
mqttpersist_rule_written_total{rule="everything"} 19
mqttpersist_rule_written_total{rule="jobs"} 3
mqttpersist_rule_written_total{rule="lossy"} 10
mqttpersist_rule_written_total{rule="sensors"} 5
# HELP mqttpersist_rule_failed_total Items of the rule whose store call failed.
# TYPE mqttpersist_rule_failed_total counter
mqttpersist_rule_failed_total{rule="#3"} 1
mqttpersist_rule_failed_total{rule="everything"} 0
mqttpersist_rule_failed_total{rule="jobs"} 0
mqttpersist_rule_failed_total{rule="lossy"} 0
mqttpersist_rule_failed_total{rule="sensors"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"mqttpersist_rule_matched_total", "mqttpersist_rule_written_total", "mqttpersist_rule_failed_total"); err != nil {
		t.Error(err)
	}

	got := gather(t, c)
	check := func(key string, want float64) {
		t.Helper()
		if v, ok := got[key]; !ok {
			t.Errorf("no %s", key)
		} else if v != want {
			t.Errorf("%s = %v, want %v", key, v, want)
		}
	}
	const (
		mainL    = `{mode="durable",store="main"}`
		archiveL = `{mode="async",store="archive"}`
		brokenL  = `{mode="durable",store="broken"}`
		lossyL   = `{mode="async",store="lossy"}`
	)
	// main: all 19 messages, each its own durable Publish of one item.
	check("mqttpersist_store_written_total"+mainL, 19)
	check("mqttpersist_store_failed_total"+mainL, 0)
	check("mqttpersist_store_retried_total"+mainL, 0)
	check("mqttpersist_store_dropped_total"+mainL, 0)
	check("mqttpersist_store_queued"+mainL, 0)
	check("mqttpersist_store_outbox_bytes"+mainL, 0)
	check("mqttpersist_store_up"+mainL, 1)
	check("mqttpersist_store_batch_size_count"+mainL, 19)
	check("mqttpersist_store_batch_size_sum"+mainL, 19)
	check(`mqttpersist_store_batch_size_bucket{le="1",mode="durable",store="main"}`, 19)
	check("mqttpersist_store_write_seconds_count"+mainL, 19)
	check(`mqttpersist_store_write_seconds_bucket{le="10",mode="durable",store="main"}`, 19)

	// archive: 5 messages written from the outbox, which is empty now;
	// the worker batches them as they come, so only the sum is fixed.
	check("mqttpersist_store_written_total"+archiveL, 5)
	check("mqttpersist_store_failed_total"+archiveL, 0)
	check("mqttpersist_store_queued"+archiveL, 0)
	check("mqttpersist_store_outbox_bytes"+archiveL, 0)
	check("mqttpersist_store_up"+archiveL, 1)
	check("mqttpersist_store_batch_size_sum"+archiveL, 5)
	if n := got["mqttpersist_store_batch_size_count"+archiveL]; n < 1 || n > 5 {
		t.Errorf("archive made %v store calls for 5 messages", n)
	}
	check("mqttpersist_store_write_seconds_count"+archiveL, got["mqttpersist_store_batch_size_count"+archiveL])

	// broken: one message, retried until the 200 ms timeout, then failed.
	check("mqttpersist_store_written_total"+brokenL, 0)
	check("mqttpersist_store_failed_total"+brokenL, 1)
	check("mqttpersist_store_up"+brokenL, 0)
	if r := got["mqttpersist_store_retried_total"+brokenL]; r < 1 {
		t.Errorf("broken: retried %v, want ≥ 1", r)
	}
	if n, r := got["mqttpersist_store_write_seconds_count"+brokenL], got["mqttpersist_store_retried_total"+brokenL]; n < r || n > r+1 {
		t.Errorf("broken: %v store calls for %v retried items", n, r)
	}

	// lossy: nothing written; what the outbox could not hold was dropped,
	// the rest waits in it.
	check("mqttpersist_store_written_total"+lossyL, 0)
	check("mqttpersist_store_up"+lossyL, 0)
	queued, dropped := got["mqttpersist_store_queued"+lossyL], got["mqttpersist_store_dropped_total"+lossyL]
	if dropped < 1 || queued < 1 || queued+dropped != 10 {
		t.Errorf("lossy: queued %v + dropped %v, want 10, both > 0", queued, dropped)
	}
	if b := got["mqttpersist_store_outbox_bytes"+lossyL]; b <= 0 || b > 300 {
		t.Errorf("lossy: outbox holds %v bytes, want (0, 300]", b)
	}

	// Histogram buckets are cumulative and end at the count.
	for _, store := range []string{mainL, archiveL, brokenL, lossyL} {
		for _, h := range []struct {
			name   string
			bounds []float64
		}{{"mqttpersist_store_batch_size", main.Stats().Batch.Bounds}, {"mqttpersist_store_write_seconds", main.Stats().Latency.Bounds}} {
			prev := 0.0
			for _, b := range h.bounds {
				k := h.name + "_bucket{le=" + fmt.Sprintf("%q", fmt.Sprint(b)) + "," + store[1:]
				v, ok := got[k]
				if !ok {
					t.Fatalf("no %s", k)
				}
				if v < prev {
					t.Errorf("%s = %v < the bucket before it (%v)", k, v, prev)
				}
				prev = v
			}
			if n := got[h.name+"_count"+store]; prev > n {
				t.Errorf("%s%s: last bucket %v > count %v", h.name, store, prev, n)
			}
		}
	}

	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if n := testutil.CollectAndCount(c); n != 3*5+4*9 {
		t.Errorf("collected %d metrics, want %d (3 per rule, 9 per store)", n, 3*5+4*9)
	}
}

// TestDuplicateRuleNames: two rules with one name give two series, the
// later labelled name#index, so a registry accepts them.
func TestDuplicateRuleNames(t *testing.T) {
	s := newPipeline(t, openSQLite(t, "dup"), &persist.PipelineOptions{Name: "dup"})
	router, err := persist.NewRouter(
		persist.Rule{Name: "r", Filter: "a/#", Store: s},
		persist.Rule{Name: "r", Filter: "b/#", Store: s},
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Publish(t.Context(), &persist.Message{Topic: "b/1", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	got := gather(t, metrics.New(router))
	if got[`mqttpersist_rule_matched_total{rule="r"}`] != 0 || got[`mqttpersist_rule_matched_total{rule="r#1"}`] != 1 {
		t.Errorf("matched: %v", got)
	}
}

// TestRegister: Register adds the collector; registering the same router
// twice is refused as a duplicate.
func TestRegister(t *testing.T) {
	s := newPipeline(t, openSQLite(t, "reg"), &persist.PipelineOptions{Name: "reg"})
	router, err := persist.NewRouter(persist.Rule{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg, router); err != nil {
		t.Fatal(err)
	}
	var dup prometheus.AlreadyRegisteredError
	if err := metrics.Register(reg, router); !errors.As(err, &dup) {
		t.Errorf("second Register: %v, want AlreadyRegisteredError", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}

// TestTwoRouters: several routers go into one registry with a label each.
func TestTwoRouters(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for _, node := range []string{"a", "b"} {
		s := newPipeline(t, openSQLite(t, node), &persist.PipelineOptions{Name: "main"})
		router, err := persist.NewRouter(persist.Rule{Name: "all", Store: s})
		if err != nil {
			t.Fatal(err)
		}
		if err := metrics.Register(prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg), router); err != nil {
			t.Fatalf("node %s: %v", node, err)
		}
	}
	want := `
# HELP mqttpersist_rule_matched_total Items (messages, acks, subscriptions, clients) routed to the rule.
# TYPE mqttpersist_rule_matched_total counter
mqttpersist_rule_matched_total{node="a",rule="all"} 0
mqttpersist_rule_matched_total{node="b",rule="all"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mqttpersist_rule_matched_total"); err != nil {
		t.Error(err)
	}
}
