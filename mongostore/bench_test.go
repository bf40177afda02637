package mongostore_test

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

// BenchmarkPublishBatch compares Publish of 100 messages with a plain
// unordered InsertMany of the same 100 documents (the fields Publish
// writes, the JSON payload as a document) into a collection of the same
// indexes through the same client, and logs the ratio of their
// throughputs (the store's over the plain InsertMany's).
func BenchmarkPublishBatch(b *testing.B) {
	serverURL(b)
	db := freshDB(b)
	st := newStore(b, db, nil)
	plain := db.Collection("plain_msg")
	for _, k := range []bson.D{{{Key: "sender", Value: 1}, {Key: "topic", Value: 1}}, {{Key: "topic", Value: 1}, {Key: "stored", Value: 1}}, {{Key: "stored", Value: 1}}, {{Key: "expire_at", Value: 1}}} {
		if _, err := plain.Indexes().CreateOne(b.Context(), mongoIndex(k)); err != nil {
			b.Fatal(err)
		}
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
		for range b.N {
			b.StopTimer()
			msgs := batch()
			b.StartTimer()
			docs := make([]any, n)
			stamp := bson.NewDateTimeFromTime(time.Now())
			for i, m := range msgs {
				docs[i] = bson.D{
					{Key: "_id", Value: m.ID}, {Key: "msgid", Value: m.ID}, {Key: "topic", Value: m.Topic},
					{Key: "sender", Value: m.From}, {Key: "qos", Value: int32(m.QoS)}, {Key: "retain", Value: m.Retain},
					{Key: "payload", Value: bson.D{{Key: "temp", Value: 21.5}, {Key: "hum", Value: int32(40)}}},
					{Key: "arrived", Value: m.Time.Unix()}, {Key: "arrived_ms", Value: m.Time.UnixMilli()},
					{Key: "node", Value: m.Node}, {Key: "stored", Value: stamp}, {Key: "mode", Value: "fanout"},
				}
			}
			if _, err := plain.InsertMany(b.Context(), docs, options.InsertMany().SetOrdered(false)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		plainNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if storeNs > 0 && plainNs > 0 {
		b.Logf("Publish of %d messages %.0f µs, plain InsertMany %.0f µs: store/plain throughput ratio %.2f",
			n, storeNs/1e3, plainNs/1e3, plainNs/storeNs)
	}
}

// BenchmarkShared runs persisttest.Bench: Publish of 100, FetchOffline of
// 10,000 messages on one topic and over 1,000 topics, acks.
func BenchmarkShared(b *testing.B) {
	serverURL(b)
	persisttest.Bench(b, harness(nil))
}

// mongoIndex is a plain index of keys.
func mongoIndex(keys bson.D) mongo.IndexModel { return mongo.IndexModel{Keys: keys} }

// BenchmarkFetch10k compares a FetchOffline of 10,000 messages stored on
// one topic with a plain find of the same documents (by topic, in _id
// order, decoded as raw BSON) through the same client.
func BenchmarkFetch10k(b *testing.B) {
	serverURL(b)
	db := freshDB(b)
	st := newStore(b, db, nil)
	const n = 10000
	msgs := make([]*persist.Message, n)
	for i := range msgs {
		msgs[i] = persisttest.NewMessage("bench/fetch/0", []byte(`{"temp":21.5,"hum":40}`))
	}
	for i := 0; i < n; i += 1000 {
		if err := st.Publish(b.Context(), msgs[i:i+1000]...); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("store", func(b *testing.B) {
		for range b.N {
			got, err := st.FetchOffline(b.Context(), "reader", "bench/fetch/0", persist.Fetch{})
			if err != nil || len(got) != n {
				b.Fatalf("FetchOffline: %d messages, %v", len(got), err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			cur, err := db.Collection("mqtt_msg").Find(b.Context(), bson.D{{Key: "topic", Value: "bench/fetch/0"}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				b.Fatal(err)
			}
			var docs []bson.Raw
			if err := cur.All(b.Context(), &docs); err != nil || len(docs) != n {
				b.Fatalf("find: %d documents, %v", len(docs), err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
