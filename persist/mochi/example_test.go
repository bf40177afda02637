package mochi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// A mochi broker that keeps its state in an SQLite file: a persistent
// subscriber that was away reconnects — without subscribing again — and
// gets what was published meanwhile.
func Example() {
	dir, err := os.MkdirTemp("", "mochi-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "mqtt.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	router, err := persist.NewRouter(
		persist.Rule{Name: "queue", Filter: "queue/#", Store: store, Mode: persist.Queue},
		persist.Rule{Name: "fanout", Filter: "#", Store: store},
	)
	if err != nil {
		log.Fatal(err)
	}

	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		log.Fatal(err)
	}
	if err := server.AddHook(mochi.New(server, router, &mochi.Options{Node: "example"}), nil); err != nil {
		log.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		log.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		log.Fatal(err)
	}
	defer server.Close()

	got := make(chan *paho.Publish, 10)
	connect := func() (*paho.Client, bool) {
		conn, err := net.Dial("tcp", tcp.Address())
		if err != nil {
			log.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil },
		}})
		expiry := uint32(3600) // a persistent session
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: "sensor-reader", KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		if err != nil {
			log.Fatal(err)
		}
		return c, ca.SessionPresent
	}

	c, _ := connect()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "sensors/#", QoS: 1}}}); err != nil {
		log.Fatal(err)
	}
	_ = c.Disconnect(&paho.Disconnect{})

	// Published while the subscriber is away (here by the broker itself).
	_ = server.Publish("sensors/1/temp", []byte("21.5"), false, 1)
	_ = server.Publish("sensors/2/temp", []byte("19.0"), false, 1)

	c, present := connect()
	defer c.Disconnect(&paho.Disconnect{})
	fmt.Println("session present:", present)
	for range 2 {
		select {
		case p := <-got:
			fmt.Println(p.Topic, string(p.Payload))
		case <-time.After(10 * time.Second):
			fmt.Println("timeout")
		}
	}
	// Output:
	// session present: true
	// sensors/1/temp 21.5
	// sensors/2/temp 19.0
}
