// Command mochibroker is a bare mochi-mqtt broker for the side-by-side
// benchmark (tools/bench): no persistence, or with -redis URL mochi's own
// Redis storage hook (github.com/mochi-mqtt/server/v2/hooks/storage/redis),
// the peer a mochi user has today. It serves MQTT on -listen with every
// client allowed, as the example broker does with no -auth, and prints
// "mochi listening on ADDR" once it does. SIGINT or SIGTERM stops it.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-redis/redis/v8"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	redishook "github.com/mochi-mqtt/server/v2/hooks/storage/redis"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1883", "MQTT `address`")
	redisURL := flag.String("redis", "", "redis://… `URL`: persist with mochi's Redis storage hook (empty: no persistence)")
	prefix := flag.String("prefix", "mochi-", "key `prefix` of the Redis hook's hashes")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		fail(err)
	}
	if *redisURL != "" {
		opts, err := redis.ParseURL(*redisURL)
		if err != nil {
			fail(fmt.Errorf("-redis: %w", err))
		}
		if err := server.AddHook(new(redishook.Hook), &redishook.Options{Options: opts, HPrefix: *prefix}); err != nil {
			fail(fmt.Errorf("redis hook: %w", err))
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: *listen})
	if err := server.AddListener(tcp); err != nil {
		fail(err)
	}
	if err := server.Serve(); err != nil {
		fail(err)
	}
	fmt.Println("mochi listening on", tcp.Address())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if err := server.Close(); err != nil {
		log.Warn("close", "error", err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mochibroker:", err)
	os.Exit(2)
}
