package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/examples/load/loadgen"
)

// runResult is what one run of one configuration measured.
type runResult struct {
	Round     int
	Rate      float64 // delivered msgs/s, first publish to last delivery
	P50       time.Duration
	P99       time.Duration
	P999      time.Duration
	CPUPerMsg float64 // broker utime+stime µs per delivered message
	// WritesPerMsg is the broker's write syscalls (syscw of /proc/PID/io)
	// per delivered message.
	WritesPerMsg float64
	// ServerCPUPerMsg is the database server's CPU µs per delivered
	// message over the same span (Redis: INFO cpu; PostgreSQL: its
	// processes in /proc); 0 when the store is in the broker or there is
	// none.
	ServerCPUPerMsg float64
	// AllocsPerMsg is the example broker's heap allocations
	// (go_memstats_mallocs_total of /metrics) per delivered message; 0
	// for mochi.
	AllocsPerMsg float64
	PeakRSSMiB   float64 // VmHWM
	Published    int
	Delivered    int
	Lost         int
	Doubled      int
	Elapsed      time.Duration
	Idle         time.Duration   // from the last delivery until the broker was idle
	Latencies    []time.Duration `json:"-"`
	// Live, Replayed and Spilled are the example broker's hook counters
	// (mqttpersist_broker_*_total): messages delivered live, from the
	// store, and live ones a client could not take in time (left to the
	// store); -1 for mochi.
	Live, Replayed, Spilled int
}

// process is a broker process the benchmark started.
type process struct {
	cmd     *exec.Cmd
	addr    string // MQTT
	metrics string // host:port of /metrics ("" without)
	done    chan error
	log     *os.File
	stopped bool
	err     error // of the stop
}

// warm drives s.warmup unmeasured runs of the load through p (see the
// package doc's -warmup), each with its own subscriber, and waits for the
// broker to be idle after each.
func (s *settings) warm(ctx context.Context, c config, p *process, id string, round int) error {
	for k := range s.warmup {
		o := s.load
		o.Addr = p.addr
		o.Subscriber = fmt.Sprintf("bench-warm-%s-%d", id, k)
		o.Topic = "bench/" + id
		fmt.Fprintf(os.Stderr, "\r\033[K[round %d/%d] %-16s warm-up run %d/%d", round, s.rounds, c.name, k+1, s.warmup)
		if _, err := loadgen.Run(ctx, o); err != nil {
			return fmt.Errorf("%s: warm-up run %d: %w (broker log: %s)", c.name, k+1, err, p.log.Name())
		}
		if err := p.waitIdle(s.idle); err != nil {
			return fmt.Errorf("%s: after warm-up run %d: %w", c.name, k+1, err)
		}
	}
	return nil
}

// runOne starts c's broker on a fresh store, drives the load through it,
// measures, and stops it and removes the store.
func (s *settings) runOne(ctx context.Context, c config, round int, profile string) (runResult, error) {
	id := fresh()
	dir := filepath.Join(s.work, fmt.Sprintf("%s-%d", c.name, round))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return runResult{}, err
	}
	defer os.RemoveAll(dir)
	var bin string
	var args []string
	var cleanup func() error
	switch c.kind {
	case "mochi":
		bin, args = s.mochiBin, []string{"-listen", "127.0.0.1:0"}
	case "mochi-redis":
		prefix := "bench-mochi-" + id + "-"
		bin, args = s.mochiBin, []string{"-listen", "127.0.0.1:0", "-redis", s.redisURL, "-prefix", prefix}
		cleanup = func() error { return deleteRedisKeys(s.redisURL, prefix) }
	case "broker":
		var storeURL string
		switch c.store {
		case "sqlite":
			storeURL = "sqlite://" + filepath.Join(dir, "mqtt.db")
		case "postgres":
			u, drop, err := freshPostgres(ctx, s.postgresURL, "bench_"+id)
			if err != nil {
				return runResult{}, err
			}
			storeURL, cleanup = u, drop
		case "redis":
			prefix := "bench-" + id
			u, err := withQuery(s.redisURL, "prefix", prefix)
			if err != nil {
				return runResult{}, err
			}
			storeURL = u
			cleanup = func() error { return deleteRedisKeys(s.redisURL, prefix) }
		}
		bin = s.brokerBin
		if strings.HasSuffix(c.name, beforeSuffix) {
			bin = s.beforeBin
		}
		args = []string{"-listen", "127.0.0.1:0", "-store", storeURL, "-mode", c.mode,
			"-outbox", filepath.Join(dir, "outbox"), "-metrics", "127.0.0.1:0", "-node", "bench"}
		if profile != "" {
			args = append(args, "-cpuprofile", profile, "-memprofile", profile+".alloc")
		}
	}
	if cleanup != nil {
		defer func() {
			if err := cleanup(); err != nil {
				fmt.Fprintf(os.Stderr, "\nbench: %s: removing the store: %v\n", c.name, err)
			}
		}()
	}

	p, err := start(ctx, bin, args, dir)
	if err != nil {
		return runResult{}, fmt.Errorf("%s: %w", c.name, err)
	}
	defer p.stop()

	if err := s.warm(ctx, c, p, id, round); err != nil {
		return runResult{}, err
	}

	meter, err := s.serverMeter(ctx, c)
	if err != nil {
		return runResult{}, fmt.Errorf("%s: the database server's CPU: %w", c.name, err)
	}
	var server0, server1 serverSnapshot
	if meter != nil {
		if server0, err = meter(); err != nil {
			return runResult{}, fmt.Errorf("%s: the database server's CPU: %w", c.name, err)
		}
	}
	cpu0, err := cpuTicks(p.cmd.Process.Pid)
	if err != nil {
		return runResult{}, err
	}
	w0, err := writeCalls(p.cmd.Process.Pid)
	if err != nil {
		return runResult{}, err
	}
	mallocs0 := map[string]float64{"mallocs": -1}
	counters0 := map[string]float64{"live": 0, "replayed": 0, "spilled": 0} // of the warm-up runs
	if p.metrics != "" {
		if err := scrape(p.metrics, "go_memstats_", mallocs0); err != nil {
			return runResult{}, err
		}
		if err := scrape(p.metrics, "mqttpersist_broker_", counters0); err != nil {
			return runResult{}, err
		}
	}
	o := s.load
	o.Addr = p.addr
	o.Subscriber = "bench-sub-" + id
	o.Topic = "bench/" + id
	tag := fmt.Sprintf("round %d/%d", round, s.rounds)
	if round == 0 {
		tag = "profile"
	}
	o.Progress = func(pr loadgen.Progress) {
		rate := 0.0
		if pr.Elapsed > 0 {
			rate = float64(pr.Delivered) / pr.Elapsed.Seconds()
		}
		fmt.Fprintf(os.Stderr, "\r\033[K[%s] %-16s published %d/%d, delivered %d (%.0f msgs/s so far)",
			tag, c.name, pr.Published, pr.Total, pr.Delivered, rate)
	}
	lr, err := loadgen.Run(ctx, o)
	if err != nil {
		return runResult{}, fmt.Errorf("load: %w (broker log: %s)", err, p.log.Name())
	}
	idleStart := time.Now()
	fmt.Fprintf(os.Stderr, "\r\033[K[%s] %-16s load done (%.0f msgs/s); waiting for the broker to be idle", tag, c.name, lr.Rate())
	if err := p.waitIdle(s.idle); err != nil {
		return runResult{}, fmt.Errorf("%s: %w", c.name, err)
	}
	cpu1, err := cpuTicks(p.cmd.Process.Pid)
	if err != nil {
		return runResult{}, err
	}
	w1, err := writeCalls(p.cmd.Process.Pid)
	if err != nil {
		return runResult{}, err
	}
	rss, err := peakRSS(p.cmd.Process.Pid)
	if err != nil {
		return runResult{}, err
	}
	if meter != nil {
		if server1, err = meter(); err != nil {
			return runResult{}, fmt.Errorf("%s: the database server's CPU: %w", c.name, err)
		}
	}
	counters := map[string]float64{"live": -1, "replayed": -1, "spilled": -1}
	mallocs1 := map[string]float64{"mallocs": -1}
	if p.metrics != "" {
		if err := scrape(p.metrics, "mqttpersist_broker_", counters); err != nil {
			return runResult{}, err
		}
		if err := scrape(p.metrics, "go_memstats_", mallocs1); err != nil {
			return runResult{}, err
		}
	}
	if err := p.stop(); err != nil {
		return runResult{}, fmt.Errorf("%s: stop: %w", c.name, err)
	}
	r := runResult{
		Round: round, Rate: lr.Rate(),
		P50: lr.Percentile(0.50), P99: lr.Percentile(0.99), P999: lr.Percentile(0.999),
		PeakRSSMiB: float64(rss) / 1024,
		Published:  lr.Published, Delivered: lr.Delivered, Lost: lr.Missing, Doubled: lr.Duplicates,
		Elapsed: lr.Elapsed, Idle: time.Since(idleStart), Latencies: lr.Latencies,
		Live: int(counters["live"] - counters0["live"]), Replayed: int(counters["replayed"] - counters0["replayed"]),
		Spilled: int(counters["spilled"] - counters0["spilled"]),
	}
	if lr.Delivered > 0 {
		r.CPUPerMsg = float64(cpu1-cpu0) * tickMicros / float64(lr.Delivered)
		r.WritesPerMsg = float64(w1-w0) / float64(lr.Delivered)
		if meter != nil {
			r.ServerCPUPerMsg = server1.since(server0) / float64(lr.Delivered)
		}
		if mallocs0["mallocs"] >= 0 && mallocs1["mallocs"] >= 0 {
			r.AllocsPerMsg = (mallocs1["mallocs"] - mallocs0["mallocs"]) / float64(lr.Delivered)
		}
	}
	return r, nil
}

// tickMicros is a clock tick of /proc/PID/stat (USER_HZ, 100 on Linux) in µs.
const tickMicros = 1e6 / 100

// start runs bin with args in dir and waits until it says where it
// listens ("… listening on ADDR"; the example broker also "metrics on
// http://ADDR/metrics").
func start(ctx context.Context, bin string, args []string, dir string) (*process, error) {
	logf, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		return nil, err
	}
	p := &process{cmd: exec.Command(bin, args...), done: make(chan error, 1), log: logf}
	p.cmd.Dir = dir
	p.cmd.Stderr = logf
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if m, ok := strings.CutPrefix(line, "metrics on http://"); ok {
				mu.Lock()
				p.metrics = strings.TrimSuffix(m, "/metrics")
				mu.Unlock()
			}
			if _, a, ok := strings.Cut(line, " listening on "); ok {
				addr <- a
			}
		}
		p.done <- p.cmd.Wait()
	}()
	select {
	case a := <-addr:
		mu.Lock()
		p.addr = a
		mu.Unlock()
		return p, nil
	case err := <-p.done:
		p.done <- err
		return nil, fmt.Errorf("%s exited before listening: %v (log: %s)", filepath.Base(bin), err, logf.Name())
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not listen in 60 s (log: %s)", filepath.Base(bin), logf.Name())
	case <-ctx.Done():
		p.cmd.Process.Kill()
		return nil, ctx.Err()
	}
}

// stop ends the process with SIGTERM (SIGKILL after 60 s) and waits for
// it; a second call returns at once.
func (p *process) stop() error {
	if p.stopped {
		return p.err
	}
	p.stopped = true
	p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		err = fmt.Errorf("no exit 60 s after SIGTERM; killed: %v", <-p.done)
	}
	p.log.Close()
	p.err = err
	return err
}

// waitIdle waits until the broker's async outboxes are empty (when it
// serves /metrics) and its CPU time stops growing: under 2 ticks (20 ms)
// in 250 ms, twice in a row. It gives up after limit.
func (p *process) waitIdle(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	if p.metrics != "" {
		for {
			q, err := queued(p.metrics)
			if err != nil {
				return err
			}
			if q == 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%v records still in the outbox after %v", q, limit)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	prev, err := cpuTicks(p.cmd.Process.Pid)
	if err != nil {
		return err
	}
	for calm := 0; calm < 2 && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		t, err := cpuTicks(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		if t-prev < 2 {
			calm++
		} else {
			calm = 0
		}
		prev = t
	}
	return nil
}

// queued sums mqttpersist_store_queued over the stores at /metrics.
func queued(hostport string) (float64, error) {
	resp, err := http.Get("http://" + hostport + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "mqttpersist_store_queued{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metrics: %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// scrape sets counters[name] to the value of prefix+name+"_total" at
// /metrics, for every name in counters.
func scrape(hostport, prefix string, counters map[string]float64) error {
	resp, err := http.Get("http://" + hostport + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if n, found := strings.CutPrefix(name, prefix); ok && found {
			n = strings.TrimSuffix(n, "_total")
			if _, want := counters[n]; want {
				v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
				if err != nil {
					return fmt.Errorf("metrics: %s: %w", sc.Text(), err)
				}
				counters[n] = v
			}
		}
	}
	return sc.Err()
}

// cpuTicks is utime+stime of pid in clock ticks (/proc/PID/stat fields
// 14 and 15).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return u + k, nil
}

// writeCalls is the write syscalls pid made (syscw of /proc/PID/io).
func writeCalls(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io: no syscw", pid)
}

// peakRSS is VmHWM of pid in KiB.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// fresh is 12 random hex digits, for names no other run uses.
func fresh() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// withQuery adds key=value to the query of rawURL.
func withQuery(rawURL, key, value string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// freshPostgres creates database name on the server of base and returns
// its URL and a function that drops it.
func freshPostgres(ctx context.Context, base, name string) (string, func() error, error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		return "", nil, fmt.Errorf("postgres: create database %s: %w", name, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path, u.RawPath = "/"+name, ""
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		for try := 0; ; try++ {
			_, err = conn.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
			if err == nil || try == 20 {
				return err
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	return u.String(), drop, nil
}

// deleteRedisKeys deletes the keys starting with prefix on the Redis
// server of rawURL.
func deleteRedisKeys(rawURL, prefix string) error {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Unlink(ctx, batch...).Err()
	}
	return nil
}
