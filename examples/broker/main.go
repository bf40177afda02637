// Command broker is an MQTT broker (github.com/mochi-mqtt/server/v2) that
// remembers: client state, subscriptions, messages for offline clients,
// retained messages and acks are kept in a database, so clients get what
// they missed across reconnects, broker restarts and broker nodes.
//
//	go run ./examples/broker                      # :1883, SQLite in ./data/mqtt.db
//	go run ./examples/broker -store postgres://user:pass@localhost/mqtt
//	go run ./examples/broker -config rules.yaml   # stores and rules from YAML
//
// With only -store, topics under queue/ are one-to-one queues (each message
// goes to one consumer) and every other topic is fanout (each subscriber
// gets every message). See config.go for the YAML format.
//
// It is a program to copy: everything it does is a few calls into
// mqttpersist (persist.NewRouter, sqlstore.Open, mochi.New).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// DefaultStore is where the broker persists when neither -store nor a
// config file says otherwise: an embedded SQLite file.
const DefaultStore = "sqlite://./data/mqtt.db"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "broker:", err)
		}
		os.Exit(2)
	}
}

// run starts the broker with args and serves until ctx is done, then shuts
// down: the listener closes, the hook finishes its deliveries and records
// their acks, and the stores are closed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":1883", "`address` the MQTT listener (TCP) binds")
	node := fs.String("node", "", "`name` of this broker node in stored state (default: the host name)")
	storeURL := fs.String("store", "", "`URL` of the database: sqlite://PATH, postgres://…, mysql://…, redis://…, redis+sentinel://…, redis+cluster://…, or none (default "+DefaultStore+")")
	configFile := fs.String("config", "", "YAML `file` with stores and rules (see examples/broker/config.go)")
	verbose := fs.Bool("v", false, "log debug messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := loadConfig(*configFile, *storeURL)
	if err != nil {
		return err
	}
	if *node != "" {
		cfg.Node = *node
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}

	if *storeURL == "none" {
		if *configFile != "" {
			return fmt.Errorf("-store none: no store, but -config %s names stores and rules", *configFile)
		}
		return serve(ctx, stdout, log, *listen, cfg.Node, nil)
	}

	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stores, err := openStores(openCtx, cfg.Stores)
	if err != nil {
		return err
	}
	defer stores.Close()
	rules, err := cfg.rules(stores)
	if err != nil {
		return err
	}
	router, err := persist.NewRouter(rules...)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer router.Close()

	for _, s := range stores.list {
		fmt.Fprintf(stdout, "store %s: %s\n", s.name, s.display)
	}
	for _, r := range rules {
		fmt.Fprintf(stdout, "rule %s: %s → %s (%s; %v)\n", r.Name, r.Filter, cfg.storeOf(r.Name), r.Mode, eventsOf(r))
	}
	go stores.expireLoop(ctx, log)
	return serve(ctx, stdout, log, *listen, cfg.Node, router)
}

// serve runs a mochi broker on listen, persisting in store (nil: a plain
// broker that remembers nothing, to compare against), until ctx is done.
func serve(ctx context.Context, stdout io.Writer, log *slog.Logger, listen, node string, store persist.Store) error {
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	var hook *mochi.Hook
	if store != nil {
		hook = mochi.New(server, store, &mochi.Options{Node: node, Logger: log})
		if err := server.AddHook(hook, nil); err != nil {
			return fmt.Errorf("persistence hook: %w", err)
		}
	} else {
		fmt.Fprintln(stdout, "store none: nothing is persisted")
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: listen})); err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	if err := server.Serve(); err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	fmt.Fprintf(stdout, "mqttpersist broker: node %s listening on %s\n", node, listenerAddr(server, listen))

	<-ctx.Done()
	fmt.Fprintln(stdout, "mqttpersist broker: shutting down")
	if err := server.Close(); err != nil {
		log.Warn("close server", "error", err)
	}
	if hook == nil {
		fmt.Fprintln(stdout, "mqttpersist broker: stopped")
		return nil
	}
	st := hook.Stats()
	fmt.Fprintf(stdout, "mqttpersist broker: stopped (stored %d, delivered live %d, replayed %d, acked %d, store failures %d)\n",
		st.Stored, st.Live, st.Replayed, st.Acked, st.Failed)
	return nil
}

// listenerAddr is the address the listener bound (so ":0" shows its port).
func listenerAddr(server *mqtt.Server, configured string) string {
	if l, ok := server.Listeners.Get("tcp"); ok {
		return l.Address()
	}
	return configured
}

func eventsOf(r persist.Rule) string {
	if r.Events == 0 {
		return "all events"
	}
	return strings.ReplaceAll(r.Events.String(), "|", ", ")
}
