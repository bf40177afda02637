package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// redisCPU returns the Redis server's CPU time (user + system).
func redisCPU(tb testing.TB, ctx context.Context, c redis.UniversalClient) time.Duration {
	tb.Helper()
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		tb.Fatalf("INFO cpu: %v", err)
	}
	var sum float64
	for _, l := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return time.Duration(sum * float64(time.Second))
}

// BenchmarkLivePattern is the Redis side of a live delivery under the
// load program, on one Redis: batches of 24 messages over 8 topics are
// published, and one persistent subscriber of every topic acks them in
// the same batches, in order. It reports the Redis server's CPU per
// message of the publishes and of the acks (INFO's used_cpu_user and
// used_cpu_sys), the figure that limits the broker's throughput where
// Redis shares the machine's cores with it. Compare two revisions by
// building each one's test binary (go test -c) and running them in turns.
func BenchmarkLivePattern(b *testing.B) {
	c := singleClient(b)
	st := newStore(b, c, nil)
	ctx := b.Context()
	const topics, per = 8, 3
	var subs []persist.Subscription
	for t := range topics {
		subs = append(subs, persist.Subscription{Filter: fmt.Sprintf("load/%d", t), QoS: 1})
	}
	if err := st.Connected(ctx, &persist.Client{ID: "sub", Node: "n1"}); err != nil {
		b.Fatal(err)
	}
	if err := st.Subscribed(ctx, "sub", subs, nil); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64)
	batches := make([][]*persist.Message, b.N)
	for k := range batches {
		for i := range topics * per {
			batches[k] = append(batches[k], &persist.Message{ID: persist.NewID(), Topic: subs[i%topics].Filter, Payload: payload,
				QoS: 1, From: fmt.Sprintf("pub-%d", i%topics), Node: "n1", Time: time.Now()})
		}
	}
	b.ResetTimer()
	// The publishes, then the acks: the Redis CPU of each is read around
	// the whole of it (INFO is a round trip that costs Redis CPU too).
	c0 := redisCPU(b, ctx, c)
	for _, msgs := range batches {
		if err := st.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	c1 := redisCPU(b, ctx, c)
	for _, msgs := range batches {
		acks := make([]persist.Ack, len(msgs))
		for i, m := range msgs {
			acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
		}
		if err := st.Acked(ctx, "sub", acks...); err != nil {
			b.Fatal(err)
		}
	}
	c2 := redisCPU(b, ctx, c)
	n := float64(b.N * topics * per)
	b.ReportMetric(float64((c1-c0).Microseconds())/n, "redis-publish-µs/msg")
	b.ReportMetric(float64((c2-c1).Microseconds())/n, "redis-ack-µs/msg")
}
