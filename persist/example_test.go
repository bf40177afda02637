package persist_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/mqttpersist/mqttpersist/persist"
)

// memWriter is a publish-only writer, such as a time-series writer: it
// embeds persist.Unsupported and declares the one event it handles.
type memWriter struct {
	persist.Unsupported
	mu  sync.Mutex
	got []string
}

func (w *memWriter) Events() persist.Event { return persist.OnPublish }

func (w *memWriter) Publish(_ context.Context, msgs ...*persist.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range msgs {
		w.got = append(w.got, fmt.Sprintf("%s %v qos%d", m.Topic, m.Mode, m.QoS))
	}
	return nil
}

func ExampleNewRouter() {
	ctx := context.Background()
	jobs, metrics := &memWriter{}, &memWriter{}
	r, err := persist.NewRouter(
		persist.Rule{Name: "jobs", Filter: "jobs/#", Store: jobs, Mode: persist.Queue},
		persist.Rule{Name: "metrics", Filter: "sensor/+/temp", Store: metrics, QoS0: true},
	)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close() // the stores stay open: the caller owns them

	err = r.Publish(ctx,
		&persist.Message{Topic: "jobs/resize", QoS: 1},
		&persist.Message{Topic: "jobs/low", QoS: 0}, // QoS 0: only rules with QoS0 store it
		&persist.Message{Topic: "sensor/1/temp", QoS: 0},
		&persist.Message{Topic: "chat/room", QoS: 1}, // no rule
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("jobs:", jobs.got)
	fmt.Println("metrics:", metrics.got)
	for _, s := range r.Stats() {
		fmt.Printf("rule %s: matched %d, written %d\n", s.Name, s.Matched, s.Written)
	}

	// A rule asking a publish-only writer for connects is refused.
	_, err = persist.NewRouter(persist.Rule{Name: "clients", Events: persist.OnConnected, Store: metrics})
	fmt.Println(err)
	// Output:
	// jobs: [jobs/resize queue qos1]
	// metrics: [sensor/1/temp fanout qos0]
	// rule jobs: matched 1, written 1
	// rule metrics: matched 1, written 1
	// persist: rule 0 "clients": store *persist_test.memWriter does not handle client.connected (it handles message.publish)
}
