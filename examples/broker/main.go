// Command broker is an MQTT broker (github.com/mochi-mqtt/server/v2) that
// remembers: client state, subscriptions, messages for offline clients,
// retained messages and acks are kept in a database, so clients get what
// they missed across reconnects, broker restarts and broker nodes.
//
//	go run ./examples/broker                      # 127.0.0.1:1883, SQLite in ./data/mqtt.db
//	go run ./examples/broker -auth users.yaml -tls-cert cert.pem -tls-key key.pem  # :8883, users and ACLs, TLS
//	go run ./examples/broker -store postgres://user:pass@localhost/mqtt
//	go run ./examples/broker -store mongodb://localhost:27017/mqtt
//	go run ./examples/broker -config rules.yaml   # stores and rules from YAML
//	go run ./examples/broker -mode async -metrics :9100
//	go run ./examples/broker -tsdb influxdb://localhost:8086/mqtt -templates examples/tsdb/emqx_backend_influxdb.tmpl
//
// With only -store, topics under queue/ are one-to-one queues (each message
// goes to one consumer) and every other topic is fanout (each subscriber
// gets every message). See config.go for the YAML format.
//
// Every store is written through a persist.Pipeline. -mode durable (the
// default) acknowledges a QoS 1/2 publish once its stores have it,
// group-committing concurrent publishes; -mode async acknowledges it once it
// is in the store's on-disk outbox (-outbox DIR/NAME, bounded by
// -outbox-bytes, full: -overflow block|drop-oldest) and writes it in
// batches, retrying while the database is down; the outbox survives a
// restart. The broker logs when a store goes down and comes back.
// -metrics ADDR serves Prometheus metrics at /metrics (persist/metrics, and
// the hook's counters as mqttpersist_broker_*_total).
//
// On SIGINT or SIGTERM it stops the listener and the hook, lets the
// pipelines drain (what is left stays in the outbox for the next start),
// then closes the stores.
//
// With no authentication configured it listens on loopback only, as
// Mosquitto does; beyond loopback it needs -auth FILE (users with bcrypt
// passwords and ACLs, mochi's auth ledger; -hash-password makes a hash;
// SIGHUP re-reads it), -tls-ca FILE (client certificates), or an explicit
// -allow-anonymous. The ACL's read rules hold for persisted messages too,
// live and replayed. -tls-cert and -tls-key put the listeners on TLS; -ws
// ADDR adds a WebSocket listener. See security.go.
//
// It is a program to copy: everything it does is a few calls into
// mqttpersist (persist.Open, persist.NewRouter, persist.NewPipeline,
// mochi.New, metrics.Register).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/metrics"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// DefaultStore is where the broker persists when neither -store nor a
// config file says otherwise: an embedded SQLite file.
const DefaultStore = "sqlite://./data/mqtt.db"

// DefaultOutbox is the directory of the async outboxes (-mode async), a
// subdirectory per store.
const DefaultOutbox = "./data/outbox"

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
// their acks, the pipelines drain, and the stores are closed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	sf := addSecurityFlags(fs) // -listen, -ws, -auth, -tls-*: security.go
	node := fs.String("node", "", "`name` of this broker node in stored state (default: the host name)")
	storeURL := fs.String("store", "", "`URL` of the database: sqlite://PATH, postgres://…, mysql://…, redis://…, redis+sentinel://…, redis+cluster://…, mongodb://…, mongodb+srv://…, or none (default "+DefaultStore+")")
	tsdbFlag := fs.String("tsdb", "", "`URL` of a time-series writer that gets every publish through -templates: influxdb://host:8086/db, influxdb2://host:8086/bucket?org=…&token=…, influxdb+udp://host:8089, opentsdb://host:4242, opentsdb+telnet://host:4242, timescale://… or postgres://… (see tsdb.go)")
	templatesFlag := fs.String("templates", "", "JSON `file` of the -tsdb writer's templates, in the seeds' format (see examples/tsdb)")
	configFile := fs.String("config", "", "YAML `file` with stores, rules and settings such as mode (see examples/broker/config.go); flags win over it")
	mode := fs.String("mode", "durable", "`durable|async`: how stores are written: durable (a QoS 1/2 publish is acknowledged once stored; concurrent ones share a write) or async (acknowledged once in the on-disk outbox; written in batches, retried while the database is down)")
	outbox := fs.String("outbox", DefaultOutbox, "`directory` of the async outboxes, a subdirectory per store")
	outboxBytes := fs.Int64("outbox-bytes", persist.DefaultOutboxBytes, "most `bytes` waiting in each store's outbox")
	overflow := fs.String("overflow", "block", "`block|drop-oldest`: what a full outbox does: block (publishers wait) or drop-oldest (counted and logged)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://`address`/metrics (empty: off)")
	wait := fs.Duration("wait", 0, "how long to keep trying, at start, a database that cannot be reached (0: fail at once)")
	verbose := fs.Bool("v", false, "log debug messages")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`, for go tool pprof (see profile.go)")
	memProfile := fs.String("memprofile", "", "write a profile of the allocations of the whole run to `file` at the end, for go tool pprof (see profile.go)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile(stderr)
	}
	if *memProfile != "" {
		defer writeAllocProfile(*memProfile, stderr)
	}
	if done, err := sf.hash(stdout, stderr); done {
		return err
	}
	if *wait < 0 {
		return fmt.Errorf("-wait %v: negative", *wait)
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
	// A flag given on the command line wins over the config file.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// pick returns the setting called name and where it came from, for
	// error messages.
	pick := func(name, flagValue, configValue string) (string, string) {
		if given[name] || configValue == "" {
			return flagValue, "-" + name
		}
		return configValue, "-config " + *configFile + ": " + strings.ReplaceAll(name, "-", "_")
	}
	if u, _ := pick("tsdb", *tsdbFlag, cfg.TSDB); u != "" {
		tmpl, _ := pick("templates", *templatesFlag, cfg.Templates)
		if err := cfg.addTSDB(u, tmpl); err != nil {
			return err
		}
	} else if *templatesFlag != "" {
		return fmt.Errorf("-templates %s: without -tsdb there is no time-series writer to use it", *templatesFlag)
	}
	sec, err := sf.resolve(cfg.SecurityConfig, given, *configFile)
	if err != nil {
		return err
	}
	ws := writeSettings{outboxBytes: *outboxBytes}
	ws.outbox, _ = pick("outbox", *outbox, cfg.Outbox)
	v, from := pick("mode", *mode, cfg.Mode)
	if ws.mode, err = persist.ParseWriteMode(v); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	v, from = pick("overflow", *overflow, cfg.Overflow)
	if ws.overflow, err = persist.ParseOverflow(v); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	from = "-outbox-bytes"
	if !given["outbox-bytes"] && cfg.OutboxBytes != nil {
		ws.outboxBytes, from = *cfg.OutboxBytes, "-config "+*configFile+": outbox_bytes"
	}
	if ws.outboxBytes < 0 {
		return fmt.Errorf("%s %d: want a number of bytes ≥ 0 (0 means %d)", from, ws.outboxBytes, persist.DefaultOutboxBytes)
	}
	if ws.outbox == "" {
		ws.outbox = DefaultOutbox
	}

	// Bind the metrics address first: a bad one stops the broker at once.
	var reg *prometheus.Registry
	if addr, from := pick("metrics", *metricsAddr, cfg.Metrics); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", from, addr, err)
		}
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		srv := &http.Server{Handler: metricsHandler(reg), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", displayAddr(ln.Addr()))
	}

	if *storeURL == "none" && cfg.Stores[tsdbStoreName] == "" {
		if *configFile != "" {
			return fmt.Errorf("-store none: no store, but -config %s names stores and rules", *configFile)
		}
		return serve(ctx, stdout, log, sec, cfg.Node, nil, reg, nil)
	}

	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second+*wait)
	defer cancel()
	stores, err := openStores(openCtx, cfg.Stores, *wait, log)
	if err != nil {
		return err
	}
	defer stores.Close()
	stores.watchTSDB(log) // tsdb.go
	if err := stores.startPipelines(ws, log); err != nil {
		return err
	}
	defer stores.closePipelines(log) // on an early return; Close twice is a no-op
	rules, err := cfg.rules(stores)
	if err != nil {
		return err
	}
	router, err := persist.NewRouter(rules...)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer router.Close()
	if reg != nil {
		if err := metrics.Register(reg, router); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := registerTSDB(reg, stores); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}

	for _, s := range stores.list {
		fmt.Fprintf(stdout, "store %s: %s (%s)\n", s.name, s.display, s.mode())
	}
	for _, r := range rules {
		fmt.Fprintf(stdout, "rule %s: %s → %s (%s; %v)\n", r.Name, r.Filter, cfg.storeOf(r.Name), r.Mode, eventsOf(r))
	}
	go stores.expireLoop(ctx, log)
	// After the broker and its hook stopped, the pipelines drain (what is
	// left stays in the outbox), then the router and the stores close.
	return serve(ctx, stdout, log, sec, cfg.Node, router, reg, func() { stores.closePipelines(log) })
}

const usage = `usage: broker [flags]

An MQTT broker that keeps client state, subscriptions, messages for offline
clients, retained messages and acks in a database.

  broker                                    # 127.0.0.1:1883 (no auth: loopback only), SQLite in ./data/mqtt.db
  broker -auth users.yaml -tls-cert cert.pem -tls-key key.pem   # :8883: users and ACLs, TLS
  broker -hash-password                     # a bcrypt hash for users.yaml
  broker -store postgres://user:pass@localhost/mqtt
  broker -store mongodb://localhost:27017/mqtt
  broker -mode async -metrics :9100         # outbox in ./data/outbox, /metrics on :9100
  broker -config rules.yaml                 # stores, rules and settings from YAML

Flags:
`

// serve runs a mochi broker on sec's listeners, persisting in store (nil:
// a plain broker that remembers nothing, to compare against), until ctx is
// done. With reg, it registers the hook's counters there. After the broker
// and its hook stopped, it calls drain (when not nil).
func serve(ctx context.Context, stdout io.Writer, log *slog.Logger, sec *security, node string, store persist.Store, reg *prometheus.Registry, drain func()) error {
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := sec.addHooks(server); err != nil {
		return err
	}
	var hook *mochi.Hook
	if store != nil {
		hook = mochi.New(server, store, &mochi.Options{Node: node, Logger: log, ACL: sec.acl()})
		if err := server.AddHook(hook, nil); err != nil {
			return fmt.Errorf("persistence hook: %w", err)
		}
		if reg != nil {
			if err := registerHook(reg, hook); err != nil {
				return fmt.Errorf("metrics: %w", err)
			}
		}
	} else {
		fmt.Fprintln(stdout, "store none: nothing is persisted")
	}
	if err := sec.addListeners(server); err != nil {
		return err
	}
	sec.reloadOnHUP(ctx, log)
	if err := server.Serve(); err != nil {
		return fmt.Errorf("listen %s: %w", sec.listen, err)
	}
	sec.announce(stdout, log, server, node)

	<-ctx.Done()
	fmt.Fprintln(stdout, "mqttpersist broker: shutting down")
	if err := server.Close(); err != nil {
		log.Warn("close server", "error", err)
	}
	if drain != nil {
		drain()
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
