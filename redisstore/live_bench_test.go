//go:build unix

package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// redisCPU returns the Redis server's CPU time (user + system).
func redisCPU(tb testing.TB, ctx context.Context, c redis.UniversalClient) time.Duration {
	tb.Helper()
	cpu, err := info(ctx, c, "cpu")
	if err != nil {
		tb.Fatalf("INFO cpu: %v", err)
	}
	var sum float64
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		f, err := strconv.ParseFloat(cpu[k], 64)
		if err != nil {
			tb.Fatalf("INFO cpu %s: %v", k, err)
		}
		sum += f
	}
	return time.Duration(sum * float64(time.Second))
}

// ownCPU returns this process's CPU time (user + system): the store's
// side of a call, go-redis's included.
func ownCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLivePattern is the Redis side of a live delivery under the
// load program, on one Redis: batches of messages over several topics are
// published, and one persistent subscriber of every topic acks them in
// the same batches, in order — async's batches (24 messages over 8
// topics) and durable's group commits (4 messages over 4 topics, what ten
// publishers waiting for their PUBACKs make). It reports the Redis
// server's CPU per message of the publishes and of the acks (INFO's
// used_cpu_user and used_cpu_sys), the figure that limits the broker's throughput where
// Redis shares the machine's cores with it, and the benchmark process's
// own (the broker's side of the same calls). Compare two revisions by
// building each one's test binary (go test -c) and running them in turns;
// for figures that do not vary with the machine's load, run Redis under
// valgrind --tool=callgrind --dump-before=infoCommand (a profile per
// phase: the INFO calls bound them).
func BenchmarkLivePattern(b *testing.B) {
	b.Run("async", func(b *testing.B) { benchLivePattern(b, 8, 3) })
	b.Run("durable", func(b *testing.B) { benchLivePattern(b, 4, 1) })
}

// benchLivePattern runs BenchmarkLivePattern with batches of per messages
// to each of topics topics.
func benchLivePattern(b *testing.B, topics, per int) {
	c := singleClient(b)
	st := newStore(b, c, nil)
	ctx := b.Context()
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
	o0, c0 := ownCPU(b), redisCPU(b, ctx, c)
	for _, msgs := range batches {
		if err := st.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	o1, c1 := ownCPU(b), redisCPU(b, ctx, c)
	for _, msgs := range batches {
		acks := make([]persist.Ack, len(msgs))
		for i, m := range msgs {
			acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
		}
		if err := st.Acked(ctx, "sub", acks...); err != nil {
			b.Fatal(err)
		}
	}
	o2, c2 := ownCPU(b), redisCPU(b, ctx, c)
	n := float64(b.N * topics * per)
	b.ReportMetric(float64((c1-c0).Microseconds())/n, "redis-publish-µs/msg")
	b.ReportMetric(float64((c2-c1).Microseconds())/n, "redis-ack-µs/msg")
	b.ReportMetric(float64((o1-o0).Microseconds())/n, "own-publish-µs/msg")
	b.ReportMetric(float64((o2-o1).Microseconds())/n, "own-ack-µs/msg")
}
