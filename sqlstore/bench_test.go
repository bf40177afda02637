package sqlstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// BenchmarkPublishBatch compares Publish of 100 messages with a plain
// multi-row INSERT of the same rows into the same table through the same
// driver and pool, and logs the ratio of their throughputs (the store's
// over the plain INSERT's; the aim is at least 0.5).
func BenchmarkPublishBatch(b *testing.B) {
	for _, d := range []string{"postgres", "mysql", "sqlite"} {
		b.Run(d, func(b *testing.B) {
			var url string
			switch d {
			case "postgres":
				url = testenv.PostgresURL(b)
			case "mysql":
				url = testenv.MySQLURL(b)
			default:
				url = "sqlite://" + b.TempDir() + "/bench.db"
			}
			benchPublishBatch(b, url)
		})
	}
}

func benchPublishBatch(b *testing.B, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := sqlstore.Open(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	sqlDB, err := st.DB().DB()
	if err != nil {
		b.Fatal(err)
	}
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

	// The plain INSERT: the same columns and values, no conflict clause.
	const cols = "msgid, topic, sender, node, qos, retain, payload, arrived, expiry, mode, username, peerhost, props"
	var q strings.Builder
	q.WriteString("INSERT INTO mqtt_msg (" + cols + ") VALUES ")
	arg := 0
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteByte('(')
		for j := range 13 {
			if j > 0 {
				q.WriteString(", ")
			}
			arg++
			if st.Dialect() == "postgres" {
				q.WriteString("$" + strconv.Itoa(arg))
			} else {
				q.WriteByte('?')
			}
		}
		q.WriteByte(')')
	}
	plainSQL := q.String()
	timeArg := func(t time.Time) any {
		if st.Dialect() == "postgres" {
			return t.UTC()
		}
		return t.UTC().Format("2006-01-02 15:04:05.000000")
	}

	var storeNs, plainNs float64
	b.Run("store", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			msgs := batch()
			b.StartTimer()
			if err := st.Publish(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		storeNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			msgs := batch()
			b.StartTimer()
			args := make([]any, 0, n*13)
			for _, m := range msgs {
				args = append(args, m.ID, m.Topic, m.From, m.Node, int(m.QoS), 0, m.Payload, timeArg(m.Time), nil, 0, nil, nil, nil)
			}
			if _, err := sqlDB.ExecContext(ctx, plainSQL, args...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		plainNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if storeNs > 0 && plainNs > 0 {
		b.Logf("%s: Publish of %d messages %.0f µs, plain INSERT %.0f µs: store/plain throughput ratio %.2f",
			st.Dialect(), n, storeNs/1e3, plainNs/1e3, plainNs/storeNs)
	}
}
