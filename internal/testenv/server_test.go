package testenv

import (
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// ended is what a test learns about a Server after its cleanup ran.
type ended struct {
	pid  int
	kids []int // the server's child processes at the end of the test
	addr string
	dir  string
}

// checkEnded fails t when the server's process still runs, its port still
// accepts connections or its directory is left.
func checkEnded(t *testing.T, e ended) {
	t.Helper()
	if e.pid == 0 {
		t.Fatal("server never started")
	}
	if processAlive(e.pid) {
		t.Errorf("server process %d still running after cleanup", e.pid)
	}
	if groupAlive(e.pid) {
		t.Errorf("a process of group %d still running after cleanup", e.pid)
	}
	for _, k := range e.kids {
		if processAlive(k) {
			t.Errorf("child %d of server process %d still running after cleanup", k, e.pid)
		}
	}
	if c, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after cleanup", e.addr)
	}
	if _, err := os.Stat(e.dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left after cleanup (stat: %v)", e.dir, err)
	}
}

func TestStartPostgres(t *testing.T) {
	var e ended
	t.Run("server", func(t *testing.T) {
		s := StartPostgres(t)
		e = ended{pid: s.Pid(), addr: s.Addr(), dir: s.dir}
		if !strings.HasPrefix(s.URL(), "postgres://mqtt:mqtt@"+s.Addr()+"/mqtt?") {
			t.Errorf("URL %q does not match Addr %q", s.URL(), s.Addr())
		}
		db, err := sql.Open("pgx", s.URL())
		if err != nil {
			t.Fatal(err)
		}
		// Closed before the server ends: cleanups run last first.
		t.Cleanup(func() { db.Close() })
		roundTrip(t, db, "$1, $2")
		var user, dbname string
		if err := db.QueryRow("SELECT current_user, current_database()").Scan(&user, &dbname); err != nil {
			t.Fatal(err)
		}
		if user != "mqtt" || dbname != "mqtt" {
			t.Errorf("connected as %s to %s, want mqtt to mqtt", user, dbname)
		}

		firstPid := s.Pid()
		s.Stop(t)
		if processAlive(firstPid) {
			t.Errorf("postmaster %d still running after Stop", firstPid)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, s.URL()); err == nil {
			conn.Close(ctx)
			t.Fatal("connected to a stopped server")
		}
		// An open pool sees the outage, too.
		if err := db.PingContext(ctx); err == nil {
			t.Error("pool pinged a stopped server")
		}
		s.Stop(t) // a no-op

		s.Start(t)
		if s.Pid() == firstPid {
			t.Errorf("Start kept pid %d", firstPid)
		}
		e.pid = s.Pid()
		var v string
		if err := db.QueryRow("SELECT v FROM kv").Scan(&v); err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if v != "ü\r\n" {
			t.Errorf("after restart read %q, want %q", v, "ü\r\n")
		}
		e.kids = descendants(e.pid)
		if len(e.kids) == 0 {
			t.Errorf("postmaster %d has no child processes", e.pid)
		}
	})
	checkEnded(t, e)
}

func TestStartRedis(t *testing.T) {
	var e ended
	t.Run("server", func(t *testing.T) {
		s := StartRedis(t)
		e = ended{pid: s.Pid(), addr: s.Addr(), dir: s.dir}
		if s.URL() != "redis://"+s.Addr()+"/0" {
			t.Errorf("URL %q does not match Addr %q", s.URL(), s.Addr())
		}
		opt, err := redis.ParseURL(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		opt.MaxRetries = -1
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		ctx := context.Background()
		if err := c.Set(ctx, "k", "v\x00\r\n", 0).Err(); err != nil {
			t.Fatal(err)
		}

		firstPid := s.Pid()
		s.Stop(t)
		if processAlive(firstPid) {
			t.Errorf("redis-server %d still running after Stop", firstPid)
		}
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatal("pinged a stopped server")
		}
		if _, err := os.Stat(filepath.Join(s.dir, "appendonlydir")); err != nil {
			t.Errorf("no append-only file: %v", err)
		}

		s.Start(t)
		e.pid = s.Pid()
		v, err := c.Get(ctx, "k").Result()
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if v != "v\x00\r\n" {
			t.Errorf("after restart read %q, want %q", v, "v\x00\r\n")
		}
	})
	checkEnded(t, e)
}

// TestServerStartWhileRunning: Start on a running server fails, and the
// server keeps running.
func TestServerStartWhileRunning(t *testing.T) {
	s := StartRedis(t)
	f := run(t, func(tb testing.TB) { s.Start(tb) })
	if !f.failed || !strings.Contains(f.msg, "is running") {
		t.Errorf("Start of a running server: failed=%v %q", f.failed, f.msg)
	}
	if err := redisPing(context.Background(), s.Addr()); err != nil {
		t.Errorf("server gone after a refused Start: %v", err)
	}
}

// TestServersInParallel: servers of concurrent tests get ports of their own.
func TestServersInParallel(t *testing.T) {
	addrs := make(chan string, 4)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"a", "b", "c", "d"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := StartRedis(t)
				addrs <- s.Addr()
			})
		}
	})
	close(addrs)
	seen := map[string]bool{}
	for a := range addrs {
		if seen[a] {
			t.Errorf("two servers on %s", a)
		}
		seen[a] = true
	}
}

func TestMissingServerBinary(t *testing.T) {
	starts := map[string]func(testing.TB) *Server{
		PostgresBinEnv: StartPostgres,
		RedisServerEnv: StartRedis,
	}
	for env, start := range starts {
		for _, tc := range []struct {
			name, ci, value string
			wantFail        bool
		}{
			{"unset", "", "", false},
			{"unset in CI", "true", "", true},
			{"missing", "", "/nonexistent/mqttpersist", false},
			{"missing in CI", "1", "/nonexistent/mqttpersist", true},
		} {
			t.Run(env+"/"+tc.name, func(t *testing.T) {
				t.Setenv("CI", tc.ci)
				t.Setenv(RequireEnv, "")
				t.Setenv(env, tc.value)
				f := run(t, func(tb testing.TB) {
					start(tb)
					t.Errorf("started a server without its binary")
				})
				wantMissing(t, f, env, tc.wantFail)
			})
		}
	}
}

// TestPostgresKilled: a postmaster killed with SIGKILL (a crash) leaves its
// System V shared memory segment; cleanup removes it, and the backends it
// had end by themselves.
func TestPostgresKilled(t *testing.T) {
	var e ended
	var shmid string
	t.Run("server", func(t *testing.T) {
		s := StartPostgres(t)
		e = ended{pid: s.Pid(), addr: s.Addr(), dir: s.dir, kids: descendants(s.Pid())}
		b, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) < 7 || len(strings.Fields(lines[6])) != 2 {
			t.Fatalf("postmaster.pid has no shared memory line:\n%s", b)
		}
		shmid = strings.Fields(lines[6])[1]
		if !sysvShmExists(t, shmid) {
			t.Fatalf("shared memory %s of the running server not found", shmid)
		}
		if err := syscall.Kill(s.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		<-s.proc.done
		s.mu.Unlock()
	})
	// The backends notice the postmaster's death by themselves; on a
	// loaded machine that takes a moment.
	for end := time.Now().Add(10 * time.Second); anyAlive(e.kids) && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	checkEnded(t, e)
	if sysvShmExists(t, shmid) {
		t.Errorf("shared memory %s left after cleanup", shmid)
	}
}

// sysvShmExists reports whether System V shared memory segment id exists.
func sysvShmExists(t *testing.T, id string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Skipf("no /proc/sysvipc/shm: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == id {
			return true
		}
	}
	return false
}
