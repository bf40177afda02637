package persist

import (
	"math"
	"slices"
	"sync"
)

// Histogram is a snapshot of a distribution: how many observations fell at
// or below each bound (cumulative, as Prometheus counts buckets), their
// count and sum. A Pipeline's batch sizes have the bounds 1, 2, 5, 10, 20,
// 50, 100, 200, 500, 1000, 2000 and 5000 items; its latencies 0.5, 1, 2.5,
// 5, 10, 25, 50, 100, 250 and 500 ms and 1, 2.5, 5 and 10 s. Each snapshot
// has its own slices.
type Histogram struct {
	// Bounds are the upper bounds of the buckets, ascending.
	Bounds []float64
	// Counts[i] is how many observations were <= Bounds[i].
	Counts []uint64
	// Count is how many observations there were.
	Count uint64
	// Sum is their sum.
	Sum float64
}

// Mean returns Sum/Count, or 0 when there was no observation.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / float64(h.Count)
}

// Bounds of a Pipeline's histograms (PipelineStats.Batch and Latency, and
// the buckets of persist/metrics). They are fixed: every Pipeline, and so
// every series of a metrics registry, has the same buckets.
var (
	// batchBounds bound the batch size histogram (items per store call).
	batchBounds = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}
	// latencyBounds bound the write latency histogram (seconds per store call).
	latencyBounds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// histogram accumulates observations.
type histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	count  uint64
	sum    float64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := len(h.bounds)
	for j, b := range h.bounds {
		if v <= b {
			i = j
			break
		}
	}
	h.mu.Lock()
	h.counts[i]++
	h.count++
	if !math.IsNaN(v) {
		h.sum += v
	}
	h.mu.Unlock()
}

func (h *histogram) snapshot() Histogram {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Histogram{Bounds: slices.Clone(h.bounds), Counts: make([]uint64, len(h.bounds)), Count: h.count, Sum: h.sum}
	var c uint64
	for i := range h.bounds {
		c += h.counts[i]
		out.Counts[i] = c
	}
	return out
}
