package sqlstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// A store on an embedded SQLite file: subscribe, publish while the client
// is away, fetch what it missed, ack.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "mqtt.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil { // schema creation is explicit
		log.Fatal(err)
	}

	// History: the subscription starts at the oldest stored message.
	sub := persist.Subscription{Filter: "sensor/+/temp", QoS: 1, History: true}
	if err := st.Subscribed(ctx, "dev-1", []persist.Subscription{sub}, nil); err != nil {
		log.Fatal(err)
	}
	var batch []*persist.Message
	for i, topic := range []string{"sensor/1/temp", "sensor/2/temp", "sensor/1/hum"} {
		batch = append(batch, &persist.Message{
			ID: persist.NewID(), Topic: topic, Payload: fmt.Appendf(nil, "%d", 20+i),
			QoS: 1, From: "sensor-gw", Time: time.Now(),
		})
	}
	if err := st.Publish(ctx, batch...); err != nil { // one INSERT
		log.Fatal(err)
	}

	missed, err := st.FetchOffline(ctx, "dev-1", "sensor/+/temp", persist.Fetch{Mode: persist.Fanout})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range missed {
		fmt.Printf("%s %s\n", m.Topic, m.Payload)
	}

	// Acking moves dev-1's cursor of that topic.
	if err := st.Acked(ctx, "dev-1", persist.Ack{ID: missed[0].ID, Topic: missed[0].Topic}); err != nil {
		log.Fatal(err)
	}
	missed, _ = st.FetchOffline(ctx, "dev-1", "sensor/+/temp", persist.Fetch{Mode: persist.Fanout})
	fmt.Println("after the ack:", len(missed))
	// Output:
	// sensor/1/temp 20
	// sensor/2/temp 21
	// after the ack: 1
}

// New takes a gorm database the caller owns; Close leaves it open.
func ExampleNew() {
	ctx := context.Background()
	db, err := gorm.Open(sqlite.Open(":memory:"), &gorm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	sqlDB, _ := db.DB()
	sqlDB.SetMaxOpenConns(1) // every :memory: connection is a database of its own
	defer sqlDB.Close()

	st, err := sqlstore.New(db, &sqlstore.Options{TablePrefix: "broker1_"})
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if err := st.Connected(ctx, &persist.Client{ID: "dev-1", Node: "node1", Online: true, OnlineAt: time.Now()}); err != nil {
		log.Fatal(err)
	}
	c, err := st.Client(ctx, "dev-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.ID, c.Node, c.Online)

	var state int
	db.Raw("select state from broker1_mqtt_client where clientid = ?", "dev-1").Scan(&state)
	fmt.Println("state column:", state)
	st.Close()
	fmt.Println("db still open:", sqlDB.Ping() == nil)
	// Output:
	// dev-1 node1 true
	// state column: 1
	// db still open: true
}

// A queue: each message goes to one consumer, which deletes it by acking.
func ExampleStore_FetchOffline_queue() {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "sqlite::memory:", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	for _, job := range []string{"job-1", "job-2", "job-3"} {
		m := &persist.Message{ID: persist.NewID(), Topic: "jobs/new", Payload: []byte(job), QoS: 1, Mode: persist.Queue, Time: time.Now()}
		if err := st.Publish(ctx, m); err != nil {
			log.Fatal(err)
		}
	}
	a, _ := st.FetchOffline(ctx, "worker-a", "jobs/#", persist.Fetch{Mode: persist.Queue, Limit: 2, Lease: time.Minute})
	b, _ := st.FetchOffline(ctx, "worker-b", "jobs/#", persist.Fetch{Mode: persist.Queue})
	fmt.Println("worker-a:", len(a), "worker-b:", len(b), string(b[0].Payload))
	for _, m := range a {
		if err := st.Acked(ctx, "worker-a", persist.Ack{ID: m.ID, Topic: m.Topic}); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// worker-a: 2 worker-b: 1 job-3
}

// ExampleStore_Actions runs the seeds' raw SQL on connect, with the client
// ID bound as a parameter.
func ExampleStore_Actions() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "mqttpersist-example")
	defer os.RemoveAll(dir)
	st, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "mqtt.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.DB().Exec("create table conn (clientid varchar(64))").Error; err != nil {
		log.Fatal(err)
	}
	acts, err := st.Actions(sqlstore.Action{
		Hook: "client.connected",
		SQL:  []string{"insert into conn(clientid) values(${clientid})"},
	})
	if err != nil {
		log.Fatal(err)
	}
	router, err := persist.NewRouter(persist.Rule{Name: "conn", Store: acts})
	if err != nil {
		log.Fatal(err)
	}
	if err := router.Connected(ctx, &persist.Client{ID: "a'; DROP TABLE conn; --", Online: true}); err != nil {
		log.Fatal(err)
	}
	var id string
	st.DB().Raw("select clientid from conn").Scan(&id)
	fmt.Println(id)
	// Output: a'; DROP TABLE conn; --
}
