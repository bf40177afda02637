// Command load measures an MQTT broker: publishers send QoS 1 (or 0, 2)
// messages as fast as their acks allow while one persistent subscriber
// counts what arrives, and it reports the publish→deliver rate and every
// message lost or repeated.
//
//	go run ./examples/broker -listen 127.0.0.1:1883 &
//	go run ./examples/load -addr 127.0.0.1:1883 -publishers 10 -messages 2000
//
// It exits 1 when a message was lost or delivered twice. It sends traffic
// only to -addr; point it at your own broker.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/mqttpersist/mqttpersist/examples/load/loadgen"
)

func main() {
	var o loadgen.Options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:1883", "broker `address` (host:port)")
	flag.IntVar(&o.Publishers, "publishers", 10, "concurrent publishers")
	flag.IntVar(&o.Messages, "messages", 2000, "messages per publisher")
	qos := flag.Uint("qos", 1, "QoS of publishes and the subscription")
	flag.IntVar(&o.Payload, "payload", 64, "payload `bytes`")
	flag.StringVar(&o.Topic, "topic", "load", "topic prefix")
	flag.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if *qos > 2 || o.Publishers < 1 || o.Messages < 1 {
		fmt.Fprintln(os.Stderr, "load: -qos must be 0, 1 or 2 and -publishers, -messages at least 1")
		os.Exit(2)
	}
	o.QoS = byte(*qos)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := loadgen.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	fmt.Println(r)
	if r.Missing > 0 || r.Duplicates > 0 {
		os.Exit(1)
	}
}
