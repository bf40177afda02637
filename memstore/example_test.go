package memstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/mqttpersist/mqttpersist/memstore"
	"github.com/mqttpersist/mqttpersist/persist"
)

// Example stores two messages, fetches them for an offline subscriber,
// acks the first, and shows what is left and what the store holds.
func Example() {
	ctx := context.Background()
	st := memstore.New()
	defer st.Close()

	a := &persist.Message{ID: persist.NewID(), Topic: "sensor/1/temp", Payload: []byte("21.5"), QoS: 1}
	b := &persist.Message{ID: persist.NewID(), Topic: "sensor/2/temp", Payload: []byte("19.0"), QoS: 1}
	if err := st.Publish(ctx, a, b); err != nil {
		fmt.Println(err)
		return
	}
	got, _ := st.FetchOffline(ctx, "dashboard", "sensor/+/temp", persist.Fetch{Mode: persist.Fanout})
	for _, m := range got {
		fmt.Printf("%s %s\n", m.Topic, m.Payload)
	}
	_ = st.Acked(ctx, "dashboard", persist.Ack{ID: a.ID, Topic: a.Topic})
	got, _ = st.FetchOffline(ctx, "dashboard", "sensor/+/temp", persist.Fetch{Mode: persist.Fanout})
	fmt.Println("after the ack:", len(got), "message")
	fmt.Println("stored:", len(st.Messages()), "messages")

	// Bad input is refused as by every store.
	_, err := st.FetchOffline(ctx, "dashboard", "sensor/#/temp", persist.Fetch{})
	fmt.Println("invalid:", errors.Is(err, persist.ErrInvalid))
	// Output:
	// sensor/1/temp 21.5
	// sensor/2/temp 19.0
	// after the ack: 1 message
	// stored: 2 messages
	// invalid: true
}

// ExampleStore_Retained keeps the last retained message of each topic and
// looks them up by filter.
func ExampleStore_Retained() {
	ctx := context.Background()
	st := memstore.New()
	for _, p := range []string{"on", "off"} {
		_ = st.Retain(ctx, &persist.Message{Topic: "lamp/1/state", Payload: []byte(p), Retain: true})
	}
	_ = st.Retain(ctx, &persist.Message{Topic: "lamp/2/state", Payload: []byte("on"), Retain: true})
	got, _ := st.Retained(ctx, "lamp/+/state")
	for _, m := range got {
		fmt.Printf("%s %s\n", m.Topic, m.Payload)
	}
	// Output:
	// lamp/1/state off
	// lamp/2/state on
}

// Example_router tests what a broker's rules store, with a memstore in
// place of the database: a rule keeps jobs/# as a queue, and a worker
// claims the job.
func Example_router() {
	ctx := context.Background()
	st := memstore.New()
	r, err := persist.NewRouter(persist.Rule{Name: "jobs", Filter: "jobs/#", Store: st, Mode: persist.Queue})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	if err := r.Publish(ctx, &persist.Message{Topic: "jobs/resize", Payload: []byte("img-7"), QoS: 1}); err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range st.Messages() {
		fmt.Println("stored:", m.Topic, m.Mode)
	}
	got, _ := st.FetchOffline(ctx, "worker-1", "jobs/#", persist.Fetch{Mode: persist.Queue})
	again, _ := st.FetchOffline(ctx, "worker-2", "jobs/#", persist.Fetch{Mode: persist.Queue})
	fmt.Println("worker-1 claims", len(got), "job; worker-2 gets", len(again))
	// Output:
	// stored: jobs/resize queue
	// worker-1 claims 1 job; worker-2 gets 0
}
