package persist_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	_ "github.com/mqttpersist/mqttpersist/sqlstore" // registers sqlite, postgres, mysql, ...
)

// A program opens a store by URL, creates its schema when it has one, and
// closes it when done. The store package registers its schemes when it is
// imported, here blank:
//
//	import _ "github.com/mqttpersist/mqttpersist/sqlstore"
//
// The URL could as well be postgres://… or mysql://…, or, with redisstore
// imported, redis://….
func ExampleOpen() {
	ctx := context.Background()
	st, err := persist.Open(ctx, "sqlite://:memory:")
	if err != nil {
		log.Fatal(err)
	}
	if c, ok := st.(persist.Closer); ok {
		defer c.Close()
	}
	if m, ok := st.(persist.Migrator); ok { // sqlstore has tables to create
		if err := m.Migrate(ctx); err != nil {
			log.Fatal(err)
		}
	}
	m := &persist.Message{ID: persist.NewID(), Topic: "sensor/1/temp", Payload: []byte("21.5"), QoS: 1, Time: time.Now()}
	if err := st.Publish(ctx, m); err != nil {
		log.Fatal(err)
	}
	msgs, err := st.FetchOffline(ctx, "app1", "sensor/+/temp", persist.Fetch{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(msgs), msgs[0].Topic, string(msgs[0].Payload))

	// A scheme no imported package registered.
	_, err = persist.Open(ctx, "oracle://scott:tiger@db:1521/orcl")
	fmt.Println(errors.Is(err, persist.ErrInvalid))
	// Output:
	// 1 sensor/1/temp 21.5
	// true
}

// Redact hides a URL's password and secret query parameters, also in a URL
// that does not parse.
func ExampleRedact() {
	fmt.Println(persist.Redact("postgres://mqtt:s3cret@db:5432/mqtt?sslmode=require&sslpassword=k3y"))
	fmt.Println(persist.Redact("mysql://mqtt:p#ss@db:3306/mqtt"))
	fmt.Println(persist.Redact("sqlite://./data/mqtt.db"))
	// Output:
	// postgres://mqtt:xxxxx@db:5432/mqtt?sslmode=require&sslpassword=xxxxx
	// mysql://mqtt:xxxxx@db:3306/mqtt
	// sqlite://./data/mqtt.db
}
