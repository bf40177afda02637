package persist_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// An async pipeline acknowledges a write once it is in its on-disk outbox
// and writes it to the store in batches; Close drains the outbox.
func ExampleNewPipeline() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pipeline-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "mqtt.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	out, err := persist.NewPipeline(db, &persist.PipelineOptions{
		Name: "sqlite", Mode: persist.Async, Outbox: filepath.Join(dir, "outbox"),
	})
	if err != nil {
		log.Fatal(err)
	}
	router, err := persist.NewRouter(persist.Rule{Name: "all", Store: out})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		if err := router.Publish(ctx, &persist.Message{Topic: "sensor/1", Payload: fmt.Appendf(nil, "m%d", i), QoS: 1}); err != nil {
			log.Fatal(err)
		}
	}
	if err := out.Close(); err != nil { // drains the outbox into the store
		log.Fatal(err)
	}
	msgs, err := db.FetchOffline(ctx, "reader", "sensor/#", persist.Fetch{})
	if err != nil {
		log.Fatal(err)
	}
	st := out.Stats()
	fmt.Println(len(msgs), "stored;", st.Written, "written,", st.Queued, "queued")
	// Output: 3 stored; 3 written, 0 queued
}
