package persist_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/memstore"
	"github.com/mqttpersist/mqttpersist/persist"
)

// BenchmarkAsyncPublish publishes one QoS 1 message per call, as the mochi
// Hook does for each PUBLISH (a context with a timeout, one message),
// through a Router into an async Pipeline with an on-disk outbox, to the
// in-memory store; the allocations per op include the worker's (decoding
// the record, the store call). It waits for the outbox to drain before it
// stops the timer.
func BenchmarkAsyncPublish(b *testing.B) {
	p, err := persist.NewPipeline(memstore.New(), &persist.PipelineOptions{Mode: persist.Async, Outbox: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	r, err := persist.NewRouter(persist.Rule{Name: "all", Filter: "#", Store: p})
	if err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte{'x'}, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m := &persist.Message{Topic: "bench/device/17/temp", Payload: payload, QoS: 1, From: "publisher-3", PeerHost: "127.0.0.1", Node: "node-a"}
		if err := r.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	for p.Stats().Queued > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
}
