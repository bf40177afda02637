package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// BenchmarkPublishBatch compares Publish of 100 messages (10 topics) with
// Publish as it was before fanout positions (redisstore.PublishBefore: no
// counter, expiry set or notices) and with a plain go-redis pipeline doing
// the seeds' writes for the same messages (an HSET of the message hash and
// a ZADD to the topic's sorted set each), on the same client. The three
// take turns within each iteration, so that a change of the machine's load
// hits them alike; it reports each one's time per batch and logs the ratios
// of their throughputs (the store's over the others'; the aim against the
// plain pipeline is at least 0.6).
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
			ctx := b.Context()
			names := [...]string{"store", "before", "plain"}
			ways := [...]func([]*persist.Message) error{
				func(msgs []*persist.Message) error { return st.Publish(ctx, msgs...) },
				func(msgs []*persist.Message) error { return redisstore.PublishBefore(ctx, st, msgs...) },
				func(msgs []*persist.Message) error {
					p := c.Pipeline()
					for _, m := range msgs {
						p.HSet(ctx, plainPrefix+":msg:"+m.ID, "id", m.ID, "from", m.From, "qos", int(m.QoS), "topic", m.Topic,
							"retain", 0, "payload", m.Payload, "ts", m.Time.Unix())
						p.ZAdd(ctx, plainPrefix+":msg:"+m.Topic, redis.Z{Score: 1, Member: m.ID})
					}
					_, err := p.Exec(ctx)
					return err
				},
			}
			var spent [len(ways)]time.Duration
			for i := range b.N {
				for k := range ways {
					w := (i + k) % len(ways)
					msgs := batch()
					start := time.Now()
					if err := ways[w](msgs); err != nil {
						b.Fatalf("%s: %v", names[w], err)
					}
					spent[w] += time.Since(start)
				}
			}
			per := func(w int) float64 { return float64(spent[w].Microseconds()) / float64(b.N) }
			for w, name := range names {
				b.ReportMetric(per(w), name+"-µs/batch")
			}
			b.ReportMetric(float64(n)/per(0)*1e6, "store-msgs/s")
			b.Logf("%s: Publish of %d messages %.0f µs, before positions %.0f µs, plain HSET+ZADD pipeline %.0f µs: store/before throughput ratio %.2f, store/plain %.2f",
				tp.Name, n, per(0), per(1), per(2), per(1)/per(0), per(2)/per(0))
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
