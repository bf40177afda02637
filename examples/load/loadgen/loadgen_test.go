package loadgen

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// TestRun drives a mochi broker on loopback: every message arrives once,
// with a latency each, sorted, and the progress callback is called.
func TestRun(t *testing.T) {
	server := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	var progress atomic.Int64
	r, err := Run(context.Background(), Options{
		Addr: tcp.Address(), Publishers: 3, Messages: 200, QoS: 1, Payload: 32, Timeout: time.Minute,
		Progress: func(Progress) { progress.Add(1) }, ProgressEvery: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 600 || r.Delivered != 600 || r.Missing != 0 || r.Duplicates != 0 {
		t.Fatalf("got %v, want 600 published and delivered once each", r)
	}
	if len(r.Latencies) != 600 {
		t.Fatalf("%d latencies for 600 messages", len(r.Latencies))
	}
	for i, d := range r.Latencies {
		if d <= 0 || (i > 0 && d < r.Latencies[i-1]) {
			t.Fatalf("latency %d = %v after %v: want positive and sorted", i, d, r.Latencies[max(i-1, 0)])
		}
	}
	if p50, p99, p100 := r.Percentile(0.5), r.Percentile(0.99), r.Percentile(1); p50 != r.Latencies[299] || p99 != r.Latencies[593] || p100 != r.Latencies[599] {
		t.Errorf("Percentile(0.5, 0.99, 1) = %v, %v, %v; want the 300th, 594th and 600th of %d", p50, p99, p100, len(r.Latencies))
	}
	if r.Percentile(1) > r.Elapsed {
		t.Errorf("largest latency %v beyond the run's %v", r.Percentile(1), r.Elapsed)
	}
	if progress.Load() == 0 {
		t.Error("Progress was never called")
	}
	if (Result{}).Percentile(0.5) != 0 {
		t.Error("Percentile of no latencies is not 0")
	}
}
