// Command tsdb is an MQTT broker that writes JSON payloads into time-series
// databases through the seeds' sample templates (the .tmpl files beside
// it, embedded): topic "sample" into InfluxDB and OpenTSDB, topics
// "sensor_data", "sensor_data2/#" and "easy_data" into Timescale
// (PostgreSQL), while client sessions live in memory.
//
//	go run ./examples/tsdb -influxdb http://localhost:8086 -database mqtt
//	go run ./examples/tsdb -opentsdb http://localhost:4242 -timescale postgres://user:pass@localhost/tutorial
//	mosquitto_pub -t sample -m '{"data": [{"temp": 1, "host": "serverA", "region": "hangzhou"}]}'
//
// -demo publishes the seeds' example messages itself, waits until they are
// written, prints each writer's counters and exits. -outbox DIR writes
// through async pipelines whose outboxes keep the points while a database
// is down.
//
// It is a program to copy: it loads templates (tsdb.ParseInflux, …),
// makes writers (influxdb.New, opentsdb.New, timescale.New), puts them
// behind pipelines and rules (persist.NewPipeline, persist.NewRouter) and
// the router into a mochi broker (persist/mochi). examples/broker does the
// same from a URL: -tsdb influxdb://localhost:8086/mqtt -templates FILE.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttpersist/mqttpersist/memstore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
	"github.com/mqttpersist/mqttpersist/tsdb"
	"github.com/mqttpersist/mqttpersist/tsdb/influxdb"
	"github.com/mqttpersist/mqttpersist/tsdb/opentsdb"
	"github.com/mqttpersist/mqttpersist/tsdb/timescale"
)

// The seeds' sample templates (emqx_backend_*_example.tmpl, as the seeds
// ship them).
var (
	//go:embed emqx_backend_influxdb.tmpl
	influxTemplates []byte
	//go:embed emqx_backend_opentsdb.tmpl
	opentsdbTemplates []byte
	//go:embed emqx_backend_timescale.tmpl
	timescaleTemplates []byte
)

// timescaleSchema creates the tables the Timescale templates insert into
// (the Timescale tutorial's sensor_data, and easy_data for whole payloads).
var timescaleSchema = []string{
	`CREATE TABLE IF NOT EXISTS sensor_data (time timestamptz NOT NULL, location text NOT NULL,
		temperature double precision, humidity double precision)`,
	`CREATE TABLE IF NOT EXISTS easy_data (time timestamptz NOT NULL, data jsonb)`,
}

// The seeds' example messages, which -demo publishes.
var demo = []struct{ topic, payload string }{
	{"sample", `{"data": [{"temp": 1, "host": "serverA", "region": "hangzhou"}, {"temp": 2, "host": "serverB", "region": "ningbo"}]}`},
	{"sensor_data", `{"data": [{"location": "bedroom", "temperature": 21.3, "humidity": 40.3},
		{"location": "bathroom", "temperature": 22.3, "humidity": 61.8},
		{"location": "kitchen", "temperature": 29.5, "humidity": 58.7}]}`},
	{"sensor_data2/kitchen", `{"location": "kitchen", "temperature": 29.5, "humidity": 58.7}`},
	{"easy_data", `{"any": "json"}`},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tsdb:", err)
		}
		os.Exit(2)
	}
}

// writer is one time-series writer and its pipeline.
type writer struct {
	name  string
	store interface {
		persist.Store
		persist.Closer
		Stats() tsdb.Stats
		OnSkip(func(tsdb.Skip))
	}
	pipe *persist.Pipeline
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tsdb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1883", "MQTT listener `address`")
	influxURL := fs.String("influxdb", "", "InfluxDB `URL` (http://host:8086), written through the 1.x /write API")
	database := fs.String("database", "mqtt", "InfluxDB `database`")
	opentsdbURL := fs.String("opentsdb", "", "OpenTSDB `URL` (http://host:4242), written through /api/put")
	timescaleURL := fs.String("timescale", "", "PostgreSQL or TimescaleDB `URL` (postgres://user:pass@host/db); its tables are created")
	outbox := fs.String("outbox", "", "write through async pipelines with their outboxes in `directory` (default: durable)")
	runDemo := fs.Bool("demo", false, "publish the seeds' example messages, print what was written, and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var writers []*writer
	var pools []*pgxpool.Pool
	defer func() {
		for _, w := range writers {
			if w.pipe != nil {
				w.pipe.Close() // drains
			}
			w.store.Close()
		}
		for _, p := range pools {
			p.Close() // a writer does not close the pool it was given
		}
	}()
	if *influxURL != "" {
		set, err := tsdb.ParseInflux("emqx_backend_influxdb.tmpl", influxTemplates)
		if err != nil {
			return err
		}
		w, err := influxdb.New(*influxURL, set, &influxdb.Options{Database: *database})
		if err != nil {
			return err
		}
		writers = append(writers, &writer{name: "influxdb", store: w})
	}
	if *opentsdbURL != "" {
		set, err := tsdb.ParseOpenTSDB("emqx_backend_opentsdb.tmpl", opentsdbTemplates)
		if err != nil {
			return err
		}
		w, err := opentsdb.New(*opentsdbURL, set, &opentsdb.Options{Summary: true})
		if err != nil {
			return err
		}
		writers = append(writers, &writer{name: "opentsdb", store: w})
	}
	if *timescaleURL != "" {
		set, err := tsdb.ParseTimescale("emqx_backend_timescale.tmpl", timescaleTemplates)
		if err != nil {
			return err
		}
		pool, err := pgxpool.New(ctx, *timescaleURL)
		if err != nil {
			return fmt.Errorf("-timescale %s: %w", persist.Redact(*timescaleURL), err)
		}
		pools = append(pools, pool)
		w, err := timescale.New(pool, set, &timescale.Options{Schema: timescaleSchema,
			Hypertables: []timescale.Hypertable{{Table: "sensor_data", TimeColumn: "time"}, {Table: "easy_data", TimeColumn: "time"}}})
		if err != nil {
			return err
		}
		if err := w.Migrate(ctx); err != nil { // tables, and hypertables where TimescaleDB is installed
			w.Close()
			return err
		}
		writers = append(writers, &writer{name: "timescale", store: w})
	}
	if len(writers) == 0 {
		return errors.New("no database: give -influxdb, -opentsdb or -timescale (see -h)")
	}

	// Sessions, offline messages and retained messages in memory; every
	// publish (QoS 0 too) to each writer, through its pipeline.
	rules := []persist.Rule{{Name: "sessions", Store: memstore.New()}}
	for _, w := range writers {
		w.store.OnSkip(func(s tsdb.Skip) { log.Warn("message skipped", "writer", w.name, "error", &s) })
		opts := &persist.PipelineOptions{Name: w.name, Health: 2 * time.Second, Logger: log}
		if *outbox != "" {
			opts.Mode, opts.Outbox = persist.Async, filepath.Join(*outbox, w.name)
		}
		p, err := persist.NewPipeline(w.store, opts)
		if err != nil {
			return err
		}
		w.pipe = p
		rules = append(rules, persist.Rule{Name: w.name, Store: p, Events: persist.OnPublish, QoS0: true})
	}
	router, err := persist.NewRouter(rules...)
	if err != nil {
		return err
	}
	defer router.Close()

	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := server.AddHook(mochi.New(server, router, &mochi.Options{Logger: log}), nil); err != nil {
		return err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: *listen})
	if err := server.AddListener(tcp); err != nil {
		return err
	}
	if err := server.Serve(); err != nil {
		return err
	}
	closeServer := sync.OnceValue(server.Close) // mochi's Close must run once
	defer closeServer()
	fmt.Fprintf(stdout, "listening on %s\n", tcp.Address())

	if *runDemo {
		for _, m := range demo {
			if err := server.Publish(m.topic, []byte(m.payload), false, 1); err != nil {
				return fmt.Errorf("publish %s: %w", m.topic, err)
			}
		}
	} else {
		<-ctx.Done()
	}
	closeServer()
	for _, w := range writers {
		if err := w.pipe.Close(); err != nil { // writes what is queued
			log.Warn("close pipeline", "writer", w.name, "error", err)
		}
		s, ps := w.store.Stats(), w.pipe.Stats()
		fmt.Fprintf(stdout, "%s: %d messages, %d points, %d skipped; %d written, %d failed\n",
			w.name, s.Messages, s.Points, s.SkippedTotal(), ps.Written, ps.Failed)
	}
	return nil
}
