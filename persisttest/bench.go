package persisttest

import (
	"fmt"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Bench runs the shared benchmarks against the stores h makes:
//
//   - PublishBatch100: Publish of 100 messages per call (reports msgs/s);
//   - FetchOffline10k/OneTopic: one fetch of 10,000 messages stored on one
//     topic, with no limit (reports msgs/s);
//   - FetchOffline10k/Wildcard1000Topics: the same across 1,000 topics
//     fetched with a '+' filter;
//   - FetchOffline10k/AfterHistory50k: OneTopic for a client that has
//     fetched and acked 50,000 messages of the topic before (a fanout
//     fetch should start at the client's cursor, not read through what it
//     acked: compare with OneTopic);
//   - FetchOffline100/NewSubscriber and …/NewSubscriberAfterHistory50k: a
//     client that subscribed (no History) fetches the 100 messages
//     published since, on a fresh topic and on one with 50,000 messages
//     before the subscription (a fetch should not read through what came
//     before the subscription: compare the two);
//   - Acked/Fanout and Acked/Queue: one ack per call;
//   - Acked/NewSubscriber and Acked/NewSubscriberAfterHistory50k: a client
//     that subscribes to a topic (no History) acks ten messages published
//     after, one per call, on a topic without a past and on one with
//     50,000 messages before the subscription (the acks should cost the
//     same: compare the two).
//
// Setup (publishing what is fetched or acked) is outside the timer.
func Bench(b *testing.B, h Harness) {
	if h.New == nil {
		b.Fatal("persisttest: Harness.New is nil")
	}
	s := newSuite(b, h)
	b.Run("PublishBatch100", func(b *testing.B) {
		s.need(b, persist.OnPublish)
		mode := s.anyMode(b)
		st := s.store(b)
		payload := []byte(`{"temp":21.5,"hum":40}`)
		const n = 100
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			batch := make([]*persist.Message, n)
			for j := range batch {
				batch[j] = NewMessage(fmt.Sprintf("bench/pub/%d", j%10), payload)
				batch[j].Mode = mode
			}
			b.StartTimer()
			if err := st.Publish(b.Context(), batch...); err != nil {
				b.Fatalf("Publish: %v", err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("FetchOffline10k", func(b *testing.B) {
		b.Run("OneTopic", func(b *testing.B) {
			s.benchFetch(b, 1, "bench/fetch/0")
		})
		b.Run("Wildcard1000Topics", func(b *testing.B) {
			s.benchFetch(b, 1000, "bench/fetch/+")
		})
		b.Run("AfterHistory50k", func(b *testing.B) {
			s.benchFetchAfterHistory(b, 50000)
		})
	})
	b.Run("FetchOffline100", func(b *testing.B) {
		b.Run("NewSubscriber", func(b *testing.B) {
			s.benchFetchNewSubscriber(b, 0)
		})
		b.Run("NewSubscriberAfterHistory50k", func(b *testing.B) {
			s.benchFetchNewSubscriber(b, 50000)
		})
	})
	b.Run("Acked", func(b *testing.B) {
		b.Run("Fanout", func(b *testing.B) {
			s.needFanout(b)
			s.need(b, persist.OnPublish|persist.OnAcked)
			st := s.store(b)
			all := benchPublish(b, st, persist.Fanout, b.N, 10)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := st.Acked(b.Context(), "bench-acker", persist.Ack{ID: all[i].ID, Topic: all[i].Topic}); err != nil {
					b.Fatalf("Acked: %v", err)
				}
			}
		})
		b.Run("NewSubscriber", func(b *testing.B) {
			s.benchNewSubscriber(b, 0)
		})
		b.Run("NewSubscriberAfterHistory50k", func(b *testing.B) {
			s.benchNewSubscriber(b, 50000)
		})
		b.Run("Queue", func(b *testing.B) {
			s.needQueue(b)
			s.need(b, persist.OnPublish|persist.OnFetch|persist.OnAcked)
			st := s.store(b)
			benchPublish(b, st, persist.Queue, b.N, 10)
			claimed, err := st.FetchOffline(b.Context(), "bench-acker", "bench/#", persist.Fetch{Mode: persist.Queue})
			if err != nil || len(claimed) != b.N {
				b.Fatalf("FetchOffline claimed %d of %d messages: %v", len(claimed), b.N, err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := st.Acked(b.Context(), "bench-acker", persist.Ack{ID: claimed[i].ID, Topic: claimed[i].Topic}); err != nil {
					b.Fatalf("Acked: %v", err)
				}
			}
		})
	})
}

// benchFetch times fetching 10,000 messages spread over topics topics
// with filter.
func (s *suite) benchFetch(b *testing.B, topics int, filter string) {
	const n = 10000
	s.need(b, persist.OnPublish|persist.OnFetch)
	mode := s.anyMode(b)
	st := s.store(b)
	publishAll := func() {
		publishN(b, st, n, func(i int) *persist.Message {
			m := NewMessage(fmt.Sprintf("bench/fetch/%d", i%topics), []byte(`{"temp":21.5,"hum":40}`))
			m.Mode = mode
			return m
		})
	}
	publishAll()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if mode == persist.Queue && i > 0 {
			// A queue fetch claims: store the messages again.
			b.StopTimer()
			st = s.store(b)
			publishAll()
			b.StartTimer()
		}
		got, err := st.FetchOffline(b.Context(), "bench-reader", filter, persist.Fetch{Mode: mode})
		if err != nil {
			b.Fatalf("FetchOffline: %v", err)
		}
		if len(got) != n {
			b.Fatalf("FetchOffline(%q) returned %d messages, want %d", filter, len(got), n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// publishN stores n messages that mk makes (mk(i) is the ith), 500 a
// call, and returns them.
func publishN(b *testing.B, st persist.Store, n int, mk func(i int) *persist.Message) []*persist.Message {
	all := make([]*persist.Message, n)
	for i := range all {
		all[i] = mk(i)
	}
	for done := 0; done < n; done += 500 {
		publish(b, st, all[done:min(done+500, n)]...)
	}
	return all
}

// benchPublish stores n messages over topics topics and returns them.
func benchPublish(b *testing.B, st persist.Store, mode persist.Mode, n, topics int) []*persist.Message {
	return publishN(b, st, n, func(i int) *persist.Message {
		m := NewMessage(fmt.Sprintf("bench/ack/%d", i%topics), []byte("x"))
		m.Mode = mode
		return m
	})
}

// publishTopic stores n fanout messages on topic.
func publishTopic(b *testing.B, st persist.Store, topic string, n int) []*persist.Message {
	return publishN(b, st, n, func(int) *persist.Message { return NewMessage(topic, []byte("x")) })
}

// historyTopic returns a store (with fanout, OnPublish, OnSubscribed and
// event) and a topic of it named after name holding history messages.
func (s *suite) historyTopic(b *testing.B, event persist.Event, name string, history int) (persist.Store, string) {
	s.needFanout(b)
	s.need(b, persist.OnPublish|persist.OnSubscribed|event)
	st := s.store(b)
	topic := fmt.Sprintf("bench/%s/%d", name, history)
	publishTopic(b, st, topic, history)
	return st, topic
}

// subscribeNew subscribes client i of an iteration to topic (no History)
// and returns its ID.
func subscribeNew(b *testing.B, st persist.Store, topic string, i int) string {
	client := fmt.Sprintf("bench-new-%d", i)
	if err := st.Subscribed(b.Context(), client, []persist.Subscription{{Filter: topic, QoS: 1}}, nil); err != nil {
		b.Fatalf("Subscribed: %v", err)
	}
	return client
}

// benchFetchNewSubscriber times the first fetch of a client that
// subscribed to a topic with history messages before it: per iteration a
// new client subscribes and 100 messages are published (outside the
// timer), then it fetches them.
func (s *suite) benchFetchNewSubscriber(b *testing.B, history int) {
	const n = 100
	st, topic := s.historyTopic(b, persist.OnFetch, "newfetch", history)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		client := subscribeNew(b, st, topic, i)
		publishTopic(b, st, topic, n)
		b.StartTimer()
		got, err := st.FetchOffline(b.Context(), client, topic, persist.Fetch{})
		if err != nil {
			b.Fatalf("FetchOffline: %v", err)
		}
		// Each iteration's client subscribed after the messages of the
		// ones before: it is due the last n only.
		if len(got) != n {
			b.Fatalf("FetchOffline of a new subscriber returned %d messages, want %d", len(got), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/fetch")
}

// benchNewSubscriber times the acks of a client that subscribes to a
// topic with history messages before it: per iteration a new client
// subscribes, and acks ten messages published after, one per call (the
// subscription and the publishing are outside the timer).
func (s *suite) benchNewSubscriber(b *testing.B, history int) {
	const acks = 10
	st, topic := s.historyTopic(b, persist.OnAcked, "newsub", history)
	ctx := b.Context()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		client := subscribeNew(b, st, topic, i)
		msgs := make([]*persist.Message, acks)
		for j := range msgs {
			msgs[j] = NewMessage(topic, []byte("x"))
			if err := st.Publish(ctx, msgs[j]); err != nil {
				b.Fatalf("Publish: %v", err)
			}
		}
		b.StartTimer()
		for _, m := range msgs {
			if err := st.Acked(ctx, client, persist.Ack{ID: m.ID, Topic: m.Topic}); err != nil {
				b.Fatalf("Acked: %v", err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(acks*b.N), "µs/ack")
}

// benchFetchAfterHistory times fetching 10,000 fanout messages of one
// topic for a client that fetched and acked history messages of the
// topic before.
func (s *suite) benchFetchAfterHistory(b *testing.B, history int) {
	const n, topic, reader = 10000, "bench/history/0", "bench-reader"
	s.needFanout(b)
	s.need(b, persist.OnPublish|persist.OnFetch|persist.OnAcked)
	st := s.store(b)
	ctx := b.Context()
	publishMore := func(count int) {
		publishN(b, st, count, func(int) *persist.Message { return NewMessage(topic, []byte(`{"temp":21.5,"hum":40}`)) })
	}
	publishMore(history)
	for acked := 0; acked < history; {
		page, err := st.FetchOffline(ctx, reader, topic, persist.Fetch{Limit: 1000})
		if err != nil {
			b.Fatalf("FetchOffline: %v", err)
		}
		if len(page) == 0 {
			b.Fatalf("FetchOffline returned nothing after %d of %d history messages acked", acked, history)
		}
		acks := make([]persist.Ack, len(page))
		for i, m := range page {
			acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
		}
		if err := st.Acked(ctx, reader, acks...); err != nil {
			b.Fatalf("Acked: %v", err)
		}
		acked += len(page)
	}
	publishMore(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := st.FetchOffline(ctx, reader, topic, persist.Fetch{})
		if err != nil {
			b.Fatalf("FetchOffline: %v", err)
		}
		if len(got) != n {
			b.Fatalf("FetchOffline after %d acked returned %d messages, want %d", history, len(got), n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
