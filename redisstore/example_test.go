package redisstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// A store opened by URL (MQTTPERSIST_REDIS_URL, as `make services` sets
// it): subscribe, publish while the client is away, fetch what it missed,
// ack. It needs a Redis server, so it has no checked output.
func Example() {
	url := os.Getenv("MQTTPERSIST_REDIS_URL") // redis://127.0.0.1:16379/0
	if url == "" {
		fmt.Println("set MQTTPERSIST_REDIS_URL")
		return
	}
	ctx := context.Background()
	st, err := redisstore.Open(ctx, url, &redisstore.Options{Prefix: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

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
	if err := st.Publish(ctx, batch...); err != nil { // one pipeline
		log.Fatal(err)
	}
	missed, err := st.FetchOffline(ctx, "dev-1", "sensor/+/temp", persist.Fetch{Mode: persist.Fanout})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range missed {
		fmt.Printf("%s %s\n", m.Topic, m.Payload)
	}
	// Acking records the ack of that one message for dev-1 (its cursor keys
	// example:cursor:{dev-1}:…:sensor/1/temp); the seeds'
	// example:acked:dev-1:sensor/1/temp keeps the highest ID acked.
	if err := st.Acked(ctx, "dev-1", persist.Ack{ID: missed[0].ID, Topic: missed[0].Topic}); err != nil {
		log.Fatal(err)
	}
}

// New takes a client the caller builds and owns — here a Redis Cluster;
// redis.NewClient and redis.NewFailoverClient (Sentinel) work the same.
func ExampleNew() {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{"127.0.0.1:17001", "127.0.0.1:17002", "127.0.0.1:17003"},
	})
	defer client.Close() // the store never closes a client it was given

	st, err := redisstore.New(client, &redisstore.Options{ExpiredAfter: 24 * time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	_ = st.Ping(context.Background())
}

// Open understands Sentinel and Cluster URLs too.
func ExampleOpen() {
	ctx := context.Background()
	for _, url := range []string{
		"redis://127.0.0.1:16379/0",
		"redis+sentinel://127.0.0.1:16389/mymaster/0",
		"redis+cluster://127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003",
	} {
		st, err := redisstore.Open(ctx, url, nil)
		if err != nil {
			log.Print(err) // names the address, never the password
			continue
		}
		st.Close()
	}
}

// The seeds' raw commands, for a persist.Rule: each ${name} stays one
// argument, so a client ID such as "x\r\nFLUSHALL" is data.
func ExampleStore_Actions() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:16379"})
	defer client.Close()
	st, err := redisstore.New(client, nil)
	if err != nil {
		log.Fatal(err)
	}
	acts, err := st.Actions(
		redisstore.Action{Hook: "client.connected", Commands: []string{"SET conn:${clientid} ${clientid}"}},
		redisstore.Action{Hook: "message.publish", Pipeline: true, Commands: []string{"RPUSH pub:${topic} ${msgid}"}},
	)
	if err != nil {
		log.Fatal(err)
	}
	router, err := persist.NewRouter(persist.Rule{Name: "raw", Store: acts})
	if err != nil {
		log.Fatal(err)
	}
	_ = router
}
