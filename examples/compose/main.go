// Command compose is a template to copy: a mochi MQTT broker whose state
// goes to two stores composed in code with a custom rule set, one of them
// running raw SQL actions.
//
//		go run ./examples/compose -listen :1883 -dir ./data
//
//	  - offline.db keeps what clients need back: jobs/# as a one-to-one
//	    queue, sensors/# as fanout for a day, QoS 0 included, with new
//	    subscribers seeing the last hour of history; nothing else is kept.
//	  - audit.db gets one row per connect, disconnect and publish through the
//	    seeds' raw SQL actions, values bound as parameters.
//
// Swap either URL for postgres://… or mysql://… (or a redisstore) and the
// rest stays the same.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

func main() {
	listen := flag.String("listen", ":1883", "MQTT listener `address`")
	dir := flag.String("dir", "./data", "`directory` of the two SQLite files")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *dir, func(addr string) { fmt.Println("compose: listening on", addr) }); err != nil {
		log.Fatal("compose: ", err)
	}
}

// run serves until ctx is done; ready is called with the listen address.
func run(ctx context.Context, listen, dir string, ready func(addr string)) error {
	// 1. The stores. Each is opened, and its schema created, explicitly.
	offline, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "offline.db"), nil)
	if err != nil {
		return err
	}
	defer offline.Close()
	if err := offline.Migrate(ctx); err != nil {
		return err
	}
	audit, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "audit.db"), nil)
	if err != nil {
		return err
	}
	defer audit.Close()
	if err := audit.DB().WithContext(ctx).Exec(`create table if not exists audit (
		event varchar(20), clientid varchar(200), topic varchar(1024), qos int, at timestamp)`).Error; err != nil {
		return err
	}

	// 2. Raw SQL actions (the seeds' "action": {"sql": [...]}): every
	// ${name} is a bound parameter, never SQL text.
	auditActions, err := audit.Actions(
		sqlstore.Action{Hook: "client.connected", SQL: []string{
			"insert into audit(event, clientid, at) values('connected', ${clientid}, ${timestamp})"}},
		sqlstore.Action{Hook: "client.disconnected", SQL: []string{
			"insert into audit(event, clientid, at) values('disconnected', ${clientid}, ${timestamp})"}},
		sqlstore.Action{Hook: "message.publish", SQL: []string{
			"insert into audit(event, clientid, topic, qos, at) values('publish', ${clientid}, ${topic}, ${qos}, ${timestamp})"}},
	)
	if err != nil {
		return err
	}

	// 3. The rules, in order: for one store, the first matching rule
	// decides how a message is kept.
	router, err := persist.NewRouter(
		persist.Rule{Name: "jobs", Filter: "jobs/#", Store: offline, Mode: persist.Queue,
			Offline: persist.Fetch{Lease: time.Minute}},
		persist.Rule{Name: "sensors", Filter: "sensors/#", Store: offline, Mode: persist.Fanout,
			QoS0: true, Expiry: 24 * time.Hour, History: true, Offline: persist.Fetch{Since: time.Hour, Limit: 1000}},
		persist.Rule{Name: "audit", Filter: "#", Store: auditActions, QoS0: true},
	)
	if err != nil {
		return err
	}
	defer router.Close()

	// 4. The broker, with the router as its persistence hook.
	server := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := server.AddHook(mochi.New(server, router, &mochi.Options{Node: "compose"}), nil); err != nil {
		return err
	}
	tcp := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: listen})
	if err := server.AddListener(tcp); err != nil {
		return err
	}
	if err := server.Serve(); err != nil {
		return err
	}
	ready(tcp.Address())
	<-ctx.Done()
	return server.Close()
}
