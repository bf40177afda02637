// Command bench measures the example broker side by side with bare mochi
// and with mochi's own Redis storage hook: each configuration runs as its
// own process, gets the same load (examples/load/loadgen: publishers
// sending QoS 1 as fast as their PUBACKs allow to one persistent
// subscriber), in alternating rounds, and one table shows throughput,
// publish→deliver latency, the broker's CPU per message and peak RSS,
// messages lost or doubled, and the ratios to bare mochi. It writes the
// charts as PNG files.
//
//	cd tools/bench && set -a && . ../../.services/env && set +a
//	go run . -publishers 10 -messages 4000 -rounds 2
//
// The configurations (-configs, comma-separated, in this order):
//
//	mochi             bare mochi, no persistence (mochibroker)
//	mochi-redis       mochi + its Redis storage hook (mochibroker -redis)
//	sqlite-durable    the example broker, SQLite file, -mode durable
//	sqlite-async      … -mode async
//	postgres-durable  the example broker, PostgreSQL ($MQTTPERSIST_POSTGRES_URL)
//	postgres-async
//	redis-durable     the example broker, Redis ($MQTTPERSIST_REDIS_URL)
//	redis-async
//
// Every run gets a fresh store: a new SQLite file, a new PostgreSQL
// database (dropped after the run), a new Redis key prefix (its keys
// deleted after the run). Broker CPU is utime+stime of the broker process
// from /proc/PID/stat over the load and until the broker is idle again
// (the async outbox drained), divided by the messages delivered. The
// database server's CPU per message is its own column, over the same span:
// Redis's used_cpu_sys+used_cpu_user (INFO cpu), PostgreSQL's postmaster
// (found by its port with ss) and its children in /proc. Peak RSS is VmHWM from
// /proc/PID/status. A message lost or delivered twice fails the run (exit
// 1, after the table).
//
// Write syscalls per message are syscw of /proc/PID/io over the same span
// (writes to clients, the outbox and the database), divided likewise;
// allocations per message are the example broker's
// go_memstats_mallocs_total (its /metrics) over the same span.
//
// -warmup N drives N runs of the same load through each broker before the
// measured one, on the same store and topics, each with a subscriber of
// its own that stays an offline persistent session: the measured run
// meets a broker that has been running, with N runs' history on its
// topics and N offline sessions, and a subscriber new to them all. They
// are not measured; the broker is idle (its outbox drained) before the
// measurement starts.
//
// -before REV adds, after each example broker configuration, the same
// configuration with examples/broker built from git revision REV (name
// suffix "@before"), so that one run compares a change with what it
// changed, round by round:
//
//	go run . -configs mochi,redis-async -before main
//
// -replay HISTORIES runs no load: per store (-replay-stores: sqlite,
// postgres, redis) a client fetches and acknowledges each history of
// messages of a fresh topic, then the fetch of -replay-messages more is
// timed; a table and the chart replay.png show replay time against
// history (see replay.go):
//
//	go run . -replay 0,10000,50000
//
// It builds examples/broker from the repository (-repo) and mochibroker
// from this module with the go command. It sends load only to the
// brokers it starts, on 127.0.0.1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mqttpersist/mqttpersist/examples/load/loadgen"
)

// config is one configuration of the benchmark.
type config struct {
	name  string
	label string // for the table and charts
	kind  string // "mochi", "mochi-redis" or "broker"
	store string // broker: "sqlite", "postgres", "redis"
	mode  string // broker: "durable", "async"
}

var allConfigs = []config{
	{"mochi", "bare mochi (no persistence)", "mochi", "", ""},
	{"mochi-redis", "mochi + its Redis storage hook", "mochi-redis", "", ""},
	{"sqlite-durable", "ours, SQLite, durable", "broker", "sqlite", "durable"},
	{"sqlite-async", "ours, SQLite, async", "broker", "sqlite", "async"},
	{"postgres-durable", "ours, PostgreSQL, durable", "broker", "postgres", "durable"},
	{"postgres-async", "ours, PostgreSQL, async", "broker", "postgres", "async"},
	{"redis-durable", "ours, Redis, durable", "broker", "redis", "durable"},
	{"redis-async", "ours, Redis, async", "broker", "redis", "async"},
}

// beforeSuffix ends the names of the configurations whose example broker
// is built from -before.
const beforeSuffix = "@before"

// settings are the command's flags.
type settings struct {
	repo, charts, jsonOut, work string
	brokerBin, mochiBin, rev    string
	before, beforeBin           string
	redisURL, postgresURL       string
	profile, profileConfig      string
	load                        loadgen.Options
	rounds, warmup              int
	idle                        time.Duration
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if errors.Is(err, errLossy) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

var errLossy = errors.New("messages lost or delivered twice")

// begin returns the context of a run (cancelled by SIGINT or SIGTERM)
// with s.work made, and the function that ends both.
func (s *settings) begin() (context.Context, func(), error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	work, err := os.MkdirTemp("", "mqttpersist-bench-")
	if err != nil {
		stop()
		return nil, nil, err
	}
	s.work = work
	return ctx, func() { os.RemoveAll(work); stop() }, nil
}

func run() error {
	var s settings
	configs := flag.String("configs", "", "comma-separated `names` of the configurations to run (default: all; see the package doc)")
	flag.IntVar(&s.load.Publishers, "publishers", 10, "concurrent publishers")
	flag.IntVar(&s.load.Messages, "messages", 4000, "messages per publisher")
	qos := flag.Uint("qos", 1, "QoS of publishes and the subscription")
	flag.IntVar(&s.load.Payload, "payload", 64, "payload `bytes`")
	flag.IntVar(&s.rounds, "rounds", 2, "rounds; each runs every configuration once, in alternating order")
	flag.DurationVar(&s.load.Timeout, "timeout", 5*time.Minute, "give up on one run after this long")
	flag.IntVar(&s.warmup, "warmup", 0, "before each measured run, drive this many unmeasured runs of the same load through the same broker and store, each with a new persistent subscriber (a broker with history and offline sessions; see the package doc)")
	flag.DurationVar(&s.idle, "idle", 60*time.Second, "after the load, wait at most this long for the broker to be idle (async: the outbox drained) before reading its CPU time")
	flag.StringVar(&s.repo, "repo", "../..", "`directory` of the mqttpersist repository (its examples/broker is built)")
	flag.StringVar(&s.charts, "charts", "charts", "`directory` for the PNG charts (throughput.png, latency.png); empty: none")
	flag.StringVar(&s.jsonOut, "json", "", "also write every run's figures as JSON to `file`")
	flag.StringVar(&s.brokerBin, "broker", "", "example broker `binary` to use instead of building examples/broker")
	flag.StringVar(&s.rev, "rev", "", "build examples/broker from this git `revision` of -repo (git archive) instead of the work tree")
	flag.StringVar(&s.before, "before", "", "also run each example broker configuration with examples/broker built from this git `revision` (\"NAME@before\")")
	flag.StringVar(&s.redisURL, "redis", os.Getenv("MQTTPERSIST_REDIS_URL"), "Redis `URL` (default $MQTTPERSIST_REDIS_URL)")
	flag.StringVar(&s.postgresURL, "postgres", os.Getenv("MQTTPERSIST_POSTGRES_URL"), "PostgreSQL `URL` of a user that may create databases (default $MQTTPERSIST_POSTGRES_URL)")
	flag.StringVar(&s.profileConfig, "profile-config", "redis-async", "configuration `name` whose example broker writes -cpuprofile")
	flag.StringVar(&s.profile, "cpuprofile", "", "after the rounds, run -profile-config once more with the broker writing a CPU profile to `file`, and its allocations to file.alloc (go tool pprof -sample_index=alloc_objects); not in the table")
	replot := flag.String("replot", "", "print the table and write the charts again from a -json `file` of an earlier run, running nothing")
	replay := flag.String("replay", "", "instead of the load: time the replay of -replay-messages after each of these comma-separated `histories` of acknowledged messages (e.g. 0,10000,50000), per store of -replay-stores, and chart it (replay.png)")
	replayN := flag.Int("replay-messages", 10000, "messages replayed after each history")
	replayStores := flag.String("replay-stores", "sqlite,postgres,redis", "comma-separated `stores` of -replay")
	flag.Parse()
	if *replot != "" {
		return replotFrom(*replot, s.charts)
	}
	if *replay != "" {
		var hs []int
		for _, f := range strings.Split(*replay, ",") {
			h, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || h < 0 {
				return fmt.Errorf("-replay: %q is not a number of messages", f)
			}
			hs = append(hs, h)
		}
		if *replayN < 1 {
			return fmt.Errorf("-replay-messages must be at least 1")
		}
		ctx, end, err := s.begin()
		if err != nil {
			return err
		}
		defer end()
		if s.charts != "" {
			if err := os.MkdirAll(s.charts, 0o755); err != nil {
				return err
			}
		}
		var stores []string
		for _, n := range strings.Split(*replayStores, ",") {
			stores = append(stores, strings.TrimSpace(n))
		}
		return s.runReplay(ctx, os.Stdout, stores, hs, *replayN, s.charts)
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	if *qos > 2 || s.load.Publishers < 1 || s.load.Messages < 1 || s.rounds < 1 {
		return fmt.Errorf("-qos must be 0, 1 or 2 and -publishers, -messages, -rounds at least 1")
	}
	s.load.QoS = byte(*qos)
	list := allConfigs
	if *configs != "" {
		list = nil
		for _, name := range strings.Split(*configs, ",") {
			i := slices.IndexFunc(allConfigs, func(c config) bool { return c.name == strings.TrimSpace(name) })
			if i < 0 {
				return fmt.Errorf("-configs: no configuration %q", name)
			}
			list = append(list, allConfigs[i])
		}
	}
	if s.before != "" {
		var with []config
		for _, c := range list {
			with = append(with, c)
			if c.kind == "broker" {
				b := c
				b.name, b.label = c.name+beforeSuffix, c.label+", before ("+s.before+")"
				with = append(with, b)
			}
		}
		list = with
	}
	for _, c := range list {
		if (c.kind == "mochi-redis" || c.store == "redis") && s.redisURL == "" {
			return fmt.Errorf("%s needs -redis or $MQTTPERSIST_REDIS_URL", c.name)
		}
		if c.store == "postgres" && s.postgresURL == "" {
			return fmt.Errorf("%s needs -postgres or $MQTTPERSIST_POSTGRES_URL", c.name)
		}
	}
	if s.profile != "" {
		if !slices.ContainsFunc(list, func(c config) bool { return c.name == s.profileConfig && c.kind == "broker" }) {
			return fmt.Errorf("-cpuprofile: -profile-config %q is not an example broker configuration of this run", s.profileConfig)
		}
		if abs, err := filepath.Abs(s.profile); err == nil {
			s.profile = abs
		}
	}

	ctx, end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	if err := s.build(ctx, list); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "%d configurations × %d rounds, %d publishers × %d QoS %d messages of %d bytes → one persistent subscriber\n",
		len(list), s.rounds, s.load.Publishers, s.load.Messages, s.load.QoS, s.load.Payload)
	fmt.Fprintf(os.Stderr, "load average before: %s\n", loadAverage())
	began := time.Now()
	results := map[string][]runResult{}
	for round := 1; round <= s.rounds; round++ {
		order := slices.Clone(list)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, c := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := s.runOne(ctx, c, round, "")
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, c.name, err)
			}
			results[c.name] = append(results[c.name], r)
			fmt.Fprintf(os.Stderr, "\r\033[K[round %d/%d] %-16s %8.0f msgs/s  p50 %v  p99 %v  CPU %.1f µs/msg  RSS %.0f MiB  lost %d doubled %d\n",
				round, s.rounds, c.name, r.Rate, ms(r.P50), ms(r.P99), r.CPUPerMsg, r.PeakRSSMiB, r.Lost, r.Doubled)
		}
	}
	fmt.Fprintf(os.Stderr, "load average after: %s (%v in all)\n", loadAverage(), time.Since(began).Round(time.Second))
	if s.profile != "" {
		i := slices.IndexFunc(list, func(c config) bool { return c.name == s.profileConfig })
		r, err := s.runOne(ctx, list[i], 0, s.profile)
		if err != nil {
			return fmt.Errorf("profile run, %s: %w", s.profileConfig, err)
		}
		fmt.Fprintf(os.Stderr, "\r\033[K[profile] %s: %.0f msgs/s, CPU %.1f µs/msg, lost %d doubled %d; CPU profile in %s, allocations in %[6]s.alloc\n",
			s.profileConfig, r.Rate, r.CPUPerMsg, r.Lost, r.Doubled, s.profile)
	}

	sum := summarize(list, results)
	printTable(os.Stdout, s, sum)
	if s.jsonOut != "" {
		b, err := json.MarshalIndent(saved{Load: loadOf(s.load), Rounds: s.rounds, Runs: results, Summary: sum}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(s.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if s.charts != "" {
		if err := writeCharts(s.charts, s, sum); err != nil {
			return fmt.Errorf("charts: %w", err)
		}
		fmt.Fprintf(os.Stderr, "charts: %s, %s\n", filepath.Join(s.charts, "throughput.png"), filepath.Join(s.charts, "latency.png"))
	}
	for _, x := range sum {
		if x.Lost > 0 || x.Doubled > 0 {
			return fmt.Errorf("%s: %d lost, %d doubled: %w", x.Name, x.Lost, x.Doubled, errLossy)
		}
	}
	return nil
}

// build builds the example broker (unless -broker names one) and
// mochibroker into the work directory.
func (s *settings) build(ctx context.Context, list []config) error {
	needBroker := slices.ContainsFunc(list, func(c config) bool { return c.kind == "broker" })
	needMochi := slices.ContainsFunc(list, func(c config) bool { return c.kind != "broker" })
	if needBroker && s.brokerBin == "" {
		s.brokerBin = filepath.Join(s.work, "broker")
		src := s.repo
		if s.rev != "" {
			src = filepath.Join(s.work, "src")
			if err := gitArchive(ctx, s.repo, s.rev, src); err != nil {
				return err
			}
		}
		what := "(work tree)"
		if s.rev != "" {
			out, err := exec.CommandContext(ctx, "git", "-C", s.repo, "rev-parse", "--short", s.rev).Output()
			if err != nil {
				return fmt.Errorf("git rev-parse %s: %w", s.rev, err)
			}
			what = s.rev + " = " + strings.TrimSpace(string(out))
		}
		fmt.Fprintf(os.Stderr, "building examples/broker of %s %s\n", s.repo, what)
		if err := goBuild(ctx, src, s.brokerBin, "./examples/broker"); err != nil {
			return err
		}
	}
	if s.before != "" && needBroker {
		s.beforeBin = filepath.Join(s.work, "broker-before")
		src := filepath.Join(s.work, "src-before")
		if err := gitArchive(ctx, s.repo, s.before, src); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, "git", "-C", s.repo, "rev-parse", "--short", s.before).Output()
		if err != nil {
			return fmt.Errorf("git rev-parse %s: %w", s.before, err)
		}
		fmt.Fprintf(os.Stderr, "building examples/broker of %s %s = %s (-before)\n", s.repo, s.before, strings.TrimSpace(string(out)))
		if err := goBuild(ctx, src, s.beforeBin, "./examples/broker"); err != nil {
			return err
		}
	}
	if needMochi {
		s.mochiBin = filepath.Join(s.work, "mochibroker")
		if err := goBuild(ctx, ".", s.mochiBin, "./mochibroker"); err != nil {
			return err
		}
	}
	return nil
}

// gitArchive extracts revision rev of the git repository in repo into dir.
func gitArchive(ctx context.Context, repo, rev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	archive := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", rev)
	extract := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	extract.Stdin = pipe
	archive.Stderr, extract.Stderr = os.Stderr, os.Stderr
	if err := archive.Start(); err != nil {
		return err
	}
	if err := extract.Run(); err != nil {
		return fmt.Errorf("tar -x of git archive %s: %w", rev, err)
	}
	if err := archive.Wait(); err != nil {
		return fmt.Errorf("git archive %s: %w", rev, err)
	}
	return nil
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w", pkg, dir, err)
	}
	return nil
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// replotFrom prints the table and writes the charts of the -json file
// path (its settings, rounds and summary) into charts.
func replotFrom(path, charts string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var in saved
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s := settings{rounds: in.Rounds}
	s.load.Publishers, s.load.Messages, s.load.QoS, s.load.Payload = in.Load.Publishers, in.Load.Messages, in.Load.QoS, in.Load.Payload
	printTable(os.Stdout, s, in.Summary)
	if charts == "" {
		return nil
	}
	return writeCharts(charts, s, in.Summary)
}

// saved is the -json file.
type saved struct {
	Load    load
	Rounds  int
	Runs    map[string][]runResult
	Summary []summary
}

// load is the load of a run, as saved.
type load struct {
	Publishers, Messages int
	QoS                  byte
	Payload              int
}

func loadOf(o loadgen.Options) load {
	return load{Publishers: o.Publishers, Messages: o.Messages, QoS: o.QoS, Payload: o.Payload}
}
