package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

// BenchmarkPublishBatch compares Publish of 100 messages with a plain
// go-redis pipeline doing the seeds' writes for the same messages (an HSET
// of the message hash and a ZADD to the topic's sorted set each), on the
// same client, and logs the ratio of their throughputs (the store's over
// the plain pipeline's; the aim is at least 0.6).
func BenchmarkPublishBatch(b *testing.B) {
	for _, tp := range topologies {
		b.Run(tp.Name, func(b *testing.B) {
			c := tp.Open(b)
			st := newStore(b, c, nil)
			const n = 100
			payload := []byte(`{"temp":21.5,"hum":40}`)
			batch := func() []*persist.Message {
				out := make([]*persist.Message, n)
				for i := range out {
					out[i] = &persist.Message{ID: persist.NewID(), Topic: fmt.Sprintf("bench/pub/%d", i%10), Payload: payload,
						QoS: 1, From: "bench-client", Node: "node1", Time: time.Now()}
				}
				return out
			}
			plainPrefix := st.Prefix() + ":plain"
			var storeNs, plainNs float64
			b.Run("store", func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					msgs := batch()
					b.StartTimer()
					if err := st.Publish(b.Context(), msgs...); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
				storeNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
			b.Run("plain", func(b *testing.B) {
				ctx := b.Context()
				for range b.N {
					b.StopTimer()
					msgs := batch()
					b.StartTimer()
					p := c.Pipeline()
					for _, m := range msgs {
						p.HSet(ctx, plainPrefix+":msg:"+m.ID, "id", m.ID, "from", m.From, "qos", int(m.QoS), "topic", m.Topic,
							"retain", 0, "payload", m.Payload, "ts", m.Time.Unix())
						p.ZAdd(ctx, plainPrefix+":msg:"+m.Topic, redis.Z{Score: 1, Member: m.ID})
					}
					if _, err := p.Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
				plainNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
			if storeNs > 0 && plainNs > 0 {
				b.Logf("%s: Publish of %d messages %.0f µs, plain HSET+ZADD pipeline %.0f µs: store/plain throughput ratio %.2f",
					tp.Name, n, storeNs/1e3, plainNs/1e3, plainNs/storeNs)
			}
		})
	}
}

// BenchmarkShared runs persisttest.Bench on every topology.
func BenchmarkShared(b *testing.B) {
	for _, tp := range topologies {
		b.Run(tp.Name, func(b *testing.B) {
			persisttest.Bench(b, harness(tp.Open(b)))
		})
	}
}
