package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// serverSnapshot is the CPU time (µs) each process of a database server
// has used so far, by a key naming the process.
type serverSnapshot map[string]float64

// since returns the CPU time used between before and s: a process that
// did not exist before counts from zero; one that ended meanwhile is
// lost (PostgreSQL's backends of the run are read before the broker stops).
func (s serverSnapshot) since(before serverSnapshot) float64 {
	var d float64
	for k, v := range s {
		d += v - before[k]
	}
	return d
}

// serverMeter returns what reads the CPU time of c's database server on
// this machine — Redis by INFO cpu, PostgreSQL by /proc of its postmaster
// and the postmaster's children — or nil when the store runs inside the
// broker (SQLite) or there is none.
func (s *settings) serverMeter(ctx context.Context, c config) (func() (serverSnapshot, error), error) {
	switch {
	case c.kind == "mochi-redis" || c.store == "redis":
		opt, err := redis.ParseURL(s.redisURL)
		if err != nil {
			return nil, err
		}
		return func() (serverSnapshot, error) {
			rc := redis.NewClient(opt)
			defer rc.Close()
			info, err := rc.Info(ctx, "cpu").Result()
			if err != nil {
				return nil, err
			}
			var total float64
			for _, line := range strings.Split(info, "\r\n") {
				k, v, ok := strings.Cut(line, ":")
				if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
					f, err := strconv.ParseFloat(v, 64)
					if err != nil {
						return nil, fmt.Errorf("redis INFO cpu: %q", line)
					}
					total += f * 1e6
				}
			}
			return serverSnapshot{"redis": total}, nil
		}, nil
	case c.store == "postgres":
		u, err := url.Parse(s.postgresURL)
		if err != nil {
			return nil, err
		}
		port := u.Port()
		if port == "" {
			port = "5432"
		}
		// The postmaster: the process listening on the URL's port.
		out, err := exec.CommandContext(ctx, "ss", "-ltnpH", "sport = :"+port).Output()
		if err != nil {
			return nil, fmt.Errorf("ss (the benchmark finds PostgreSQL's postmaster by its port): %w", err)
		}
		_, rest, _ := strings.Cut(string(out), "pid=")
		digits, _, _ := strings.Cut(rest, ",")
		pm, err := strconv.Atoi(digits)
		if err != nil {
			return nil, fmt.Errorf("no process listens on port %s here: %q", port, out)
		}
		return func() (serverSnapshot, error) { return processTree(pm) }, nil
	}
	return nil, nil
}

// processTree returns the CPU time of pid and of its children.
func processTree(pid int) (serverSnapshot, error) {
	snap := serverSnapshot{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p != pid {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue // ended
			}
			s := string(b)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
			if len(f) < 2 || f[1] != strconv.Itoa(pid) { // f[1] is field 4, the parent
				continue
			}
		}
		t, err := cpuTicks(p)
		if err != nil {
			continue
		}
		snap[e.Name()] = float64(t) * tickMicros
	}
	if _, ok := snap[strconv.Itoa(pid)]; !ok {
		return nil, fmt.Errorf("postmaster %d: not found in /proc (is PostgreSQL on this machine?)", pid)
	}
	return snap, nil
}
