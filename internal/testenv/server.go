package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables naming the server binaries StartPostgres and
// StartRedis run; `make services` writes them to .services/env.
const (
	// PostgresBinEnv is the directory holding PostgreSQL's initdb and postgres
	// (Debian: /usr/lib/postgresql/15/bin).
	PostgresBinEnv = "MQTTPERSIST_POSTGRES_BIN"
	// RedisServerEnv is the path of redis-server.
	RedisServerEnv = "MQTTPERSIST_REDIS_SERVER"
)

const (
	serverStartTimeout = 60 * time.Second
	serverStopTimeout  = 60 * time.Second
	// Private servers listen on a random port in [serverPortMin, serverPortMax]:
	// below Linux's ephemeral range (32768-60999), so that no outgoing
	// connection of another program holds the port (TIME_WAIT) when a
	// stopped server binds it again, and clear of the shared servers' ports.
	serverPortMin = 20000
	serverPortMax = 29999
	// A first start that finds its port taken tries this many ports in all.
	serverPortTries = 8
)

// Server is a database server process of a test's own, on a free loopback
// port, with its data in a temporary directory. Unlike the shared servers of
// `make services`, a test may stop and start it (Stop, Start) to see what its
// code does while the database is away. It is killed and its directory
// removed when the test that created it ends.
//
// Stop and Start end the test on failure (t.Fatalf), so call them from the
// test's goroutine; URL, Addr and Pid may be called from any goroutine.
type Server struct {
	kind    string // "postgres" or "redis", for messages
	dir     string // data, configuration and log
	logPath string
	addr    string // 127.0.0.1:PORT
	url     string

	// command returns the command that runs the server in the foreground.
	command func() *exec.Cmd
	// stopSignal asks the server for a clean shutdown; killSignal is the
	// quick end at cleanup (the data is thrown away).
	stopSignal, killSignal syscall.Signal
	// ready returns nil once the server answers a request at s.url.
	ready func(ctx context.Context) error
	cred  *syscall.Credential // run as this OS user; nil: as ourselves
	// afterKill, if set, frees what a server killed at cleanup may leave
	// behind outside its directory.
	afterKill func(t testing.TB)

	mu   sync.Mutex
	proc *serverProc // nil before the first start
}

// serverProc is one run of the server process.
type serverProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // cmd.Wait's result, set before done is closed
}

func (p *serverProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// URL returns the URL tests connect with:
// postgres://mqtt:mqtt@127.0.0.1:PORT/mqtt?sslmode=disable for PostgreSQL,
// redis://127.0.0.1:PORT/0 for Redis. It stays the same across Stop and Start.
func (s *Server) URL() string { return s.url }

// Addr returns the server's address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return s.addr }

// Pid returns the process id of the server's current (or last) process: the
// postmaster for PostgreSQL. It is 0 before the server first started.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Stop shuts the server down cleanly (PostgreSQL: fast shutdown, which ends
// open sessions; Redis: SHUTDOWN, which writes the append-only file) and
// returns once the process has exited and its port refuses connections.
// Stopping a stopped server does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stop(s.stopSignal, serverStopTimeout); err != nil {
		t.Fatalf("testenv: stopping %s on %s: %v%s", s.kind, s.addr, err, s.logTail())
	}
	if err := waitRefused(s.addr, 10*time.Second); err != nil {
		t.Fatalf("testenv: %s on %s stopped: %v", s.kind, s.addr, err)
	}
}

// Start starts the stopped server again, on the same port with the same
// data, and returns once it accepts connections (PostgreSQL: a query at URL
// works; Redis: PING answers PONG). Starting a running server fails the test.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		t.Fatalf("testenv: Start: %s on %s is running (pid %d)", s.kind, s.addr, s.proc.cmd.Process.Pid)
	}
	if err := s.launch(); err != nil {
		t.Fatalf("testenv: starting %s on %s: %v%s", s.kind, s.addr, err, s.logTail())
	}
}

// launch starts the server process and waits until s.ready succeeds. On
// failure the process is killed; s.mu is held.
func (s *Server) launch() error {
	if err := s.spawn(); err != nil {
		return err
	}
	if err := s.waitReady(s.ready); err != nil {
		_ = s.stop(syscall.SIGKILL, serverStopTimeout)
		return err
	}
	return nil
}

// spawn starts the server process in its own process group, with its output
// appended to the log. s.mu is held.
func (s *Server) spawn() error {
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "\n--- testenv: starting %s on %s at %s ---\n", s.kind, s.addr, time.Now().Format(time.RFC3339Nano))
	cmd := s.command()
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = s.procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &serverProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p
	return nil
}

// procAttr: a process group of its own (so that the server's children can be
// found and killed with it), running as s.cred, and killed should the test
// binary die without running its cleanups (a -timeout panic). Pdeathsig is
// Linux's (this file does not build elsewhere); it fires when the OS thread
// that started the process exits, which Go does only for a goroutine that
// ends while locked to its thread (runtime.LockOSThread).
func (s *Server) procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: s.cred,
	}
}

// waitReady polls ready until it succeeds, the process exits or
// serverStartTimeout passes. s.mu is held.
func (s *Server) waitReady(ready func(context.Context) error) error {
	p := s.proc
	deadline := time.Now().Add(serverStartTimeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if p.exited() {
			return &exitError{err: p.err}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", serverStartTimeout, last)
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exitError: the server process exited while we waited for it to get ready.
type exitError struct{ err error }

func (e *exitError) Error() string {
	return fmt.Sprintf("the server process exited (%v)", e.err)
}

// stop sends sig to the server process and waits up to timeout for it to
// exit; then it SIGKILLs whatever is left of it: the process, its process
// group (Redis's forks) and the children it had (PostgreSQL's backends, which
// each run in a session of their own). It returns an error when the process
// did not exit by itself in time or is not gone after the kill. s.mu is held.
func (s *Server) stop(sig syscall.Signal, timeout time.Duration) error {
	p := s.proc
	if p == nil || p.exited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	kids := descendants(pid)
	_ = syscall.Kill(pid, sig)
	var err error
	select {
	case <-p.done:
		// The postmaster waits for its children before it exits, so this
		// is normally all.
		if !groupAlive(pid) && !anyAlive(kids) {
			return nil
		}
	case <-time.After(timeout):
		err = fmt.Errorf("pid %d did not exit within %v of %v; killed it", pid, timeout, sig)
		kids = append(kids, descendants(pid)...)
	}
	if !p.exited() || groupAlive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	for _, k := range kids {
		if processAlive(k) {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d still running after SIGKILL", pid)
	}
	for end := time.Now().Add(10 * time.Second); groupAlive(pid) || anyAlive(kids); {
		if time.Now().After(end) {
			return fmt.Errorf("processes of pid %d still running after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// logTail returns the end of the server's log, to append to a message.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	const max = 3000
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return fmt.Sprintf("\n----- end of %s -----\n%s-----", s.logPath, b)
}

// cleanup ends the server for good at the end of the test; s.mu is not held.
func (s *Server) cleanup(t testing.TB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.Failed() && s.proc != nil {
		t.Logf("testenv: %s on %s: log of a failed test:%s", s.kind, s.addr, s.logTail())
	}
	if err := s.stop(s.killSignal, 15*time.Second); err != nil {
		t.Errorf("testenv: ending %s on %s: %v", s.kind, s.addr, err)
	}
	if s.afterKill != nil {
		s.afterKill(t)
	}
}

// procInfo is what /proc/PID/stat tells about a process.
type procInfo struct {
	pid, ppid, pgrp int
	state           string // R, S, D, Z (zombie), X (dead), ...
}

func (p procInfo) alive() bool { return p.state != "Z" && p.state != "X" }

// procs lists the processes in /proc; ok is false without /proc.
func procs() (list []procInfo, ok bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if p, ok := procStat(pid); ok {
				list = append(list, p)
			}
		}
	}
	return list, true
}

// procStat reads /proc/PID/stat.
func procStat(pid int) (procInfo, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return procInfo{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return procInfo{}, false
	}
	return procInfo{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0]}, true
}

// descendants returns the running children of pid, their children, and so on.
func descendants(pid int) []int {
	list, _ := procs()
	kids := map[int][]int{}
	for _, p := range list {
		if p.alive() {
			kids[p.ppid] = append(kids[p.ppid], p.pid)
		}
	}
	var out []int
	for queue := kids[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, kids[queue[0]]...)
	}
	return out
}

// groupAlive reports whether a process of process group pgid is running. A
// zombie (killed, not yet reaped: its parent is dead and init may not reap)
// does not count.
func groupAlive(pgid int) bool {
	list, ok := procs()
	if !ok {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, p := range list {
		if p.pgrp == pgid && p.alive() {
			return true
		}
	}
	return false
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		if processAlive(pid) {
			return true
		}
	}
	return false
}

// processAlive reports whether process pid is running (and is not a zombie).
func processAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	if p, ok := procStat(pid); ok {
		return p.alive()
	}
	_, err := os.Stat("/proc/self/stat")
	return err != nil // no /proc: trust kill; else pid is gone meanwhile
}

// waitRefused waits until nothing accepts TCP connections at addr.
func waitRefused(addr string, timeout time.Duration) error {
	for end := time.Now().Add(timeout); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		if time.Now().After(end) {
			return fmt.Errorf("%s still accepts connections after %v", addr, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverEnv is our environment without PG* variables, which would steer
// initdb and postgres (PGDATA, PGPORT, ...).
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // taken by a Server of this process
)

// reservePort returns a port in [serverPortMin, serverPortMax] that no
// Server of this process has and that can be bound on 127.0.0.1 now. It is
// released when the test ends.
func reservePort(t testing.TB) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for try := 0; try < 200; try++ {
		port := serverPortMin + rand.IntN(serverPortMax-serverPortMin+1)
		if ports[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		ports[port] = true
		t.Cleanup(func() {
			portsMu.Lock()
			delete(ports, port)
			portsMu.Unlock()
		})
		return port, nil
	}
	return 0, errors.New("no free port found")
}

// firstStart picks a port, sets s.addr and s.url (through setPort) and
// starts the server; when the server exits because another process took the
// port meanwhile, it tries another port.
func (s *Server) firstStart(t testing.TB, setPort func(port int), ready func(context.Context) error) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for try := 1; ; try++ {
		port, err := reservePort(t)
		if err != nil {
			t.Fatalf("testenv: %s: %v", s.kind, err)
		}
		setPort(port)
		err = s.spawn()
		if err == nil {
			err = s.waitReady(ready)
		}
		if err == nil {
			return
		}
		_ = s.stop(syscall.SIGKILL, serverStopTimeout)
		var exit *exitError
		if errors.As(err, &exit) && try < serverPortTries && s.portInUse() {
			t.Logf("testenv: %s: port %d was taken; trying another", s.kind, port)
			continue
		}
		t.Fatalf("testenv: starting %s on %s: %v%s", s.kind, s.addr, err, s.logTail())
	}
}

// portInUse reports whether the last start in the log failed to bind its port.
func (s *Server) portInUse() bool {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return false
	}
	if i := bytes.LastIndex(b, []byte("--- testenv: starting")); i >= 0 {
		b = b[i:]
	}
	return bytes.Contains(b, []byte("already in use"))
}

// ---- PostgreSQL ----

const (
	pgUser      = "mqtt"
	pgPassword  = "mqtt"
	pgDatabase  = "mqtt"
	pgSuperuser = "postgres"
	pgOSUser    = "postgres" // PostgreSQL refuses to run as root
)

// StartPostgres starts a PostgreSQL server of the test's own, from the
// binaries in MQTTPERSIST_POSTGRES_BIN, and returns once URL works: database
// mqtt owned by user mqtt (password mqtt), superuser postgres, any password
// accepted (trust). The cluster is fresh (initdb), runs with fsync=off, and
// lives in a directory under os.TempDir() removed at cleanup; when the test
// runs as root, the server runs as the OS user postgres. Without the
// variable, or when its binaries are missing, the test ends through
// Unavailable.
func StartPostgres(t testing.TB) *Server {
	t.Helper()
	bin := Getenv(t, PostgresBinEnv)
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			Unavailable(t, PostgresBinEnv, "%v", err)
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup(pgOSUser)
		if err != nil {
			Unavailable(t, PostgresBinEnv, "running as root needs the OS user %s to run PostgreSQL: %v", pgOSUser, err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("testenv: OS user %s: %v", pgOSUser, err)
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}

	// Not t.TempDir(): the postgres user must reach the directory (t.TempDir's
	// parent is private to us), and the unix socket path must stay short.
	dir, err := os.MkdirTemp("", "mqttpersist-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: removing %s: %v", dir, err)
		}
	})
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	data := filepath.Join(dir, "data")
	s := &Server{
		kind:       "postgres",
		dir:        dir,
		logPath:    filepath.Join(dir, "postgres.log"),
		stopSignal: syscall.SIGINT, // fast shutdown
		// Immediate shutdown: no checkpoint, but the postmaster still
		// removes its shared memory, which a SIGKILL would leak.
		killSignal: syscall.SIGQUIT,
		cred:       cred,
	}
	t.Cleanup(func() { s.cleanup(t) })

	initLog := filepath.Join(dir, "initdb.log")
	if err := s.run(initLog, filepath.Join(bin, "initdb"), "-D", data, "-U", pgSuperuser,
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		b, _ := os.ReadFile(initLog)
		t.Fatalf("testenv: initdb %s: %v\n%s", data, err, b)
	}

	var port int
	s.command = func() *exec.Cmd {
		return exec.Command(filepath.Join(bin, "postgres"), "-D", data,
			"-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=100",
			"-c", "shared_buffers=16MB",
			"-c", "timezone=UTC",
			// Dynamic shared memory in files under data/, not /dev/shm:
			// nothing outlives the directory.
			"-c", "dynamic_shared_memory_type=mmap",
		)
	}
	s.afterKill = func(t testing.TB) { pgRemoveShm(t, data) }
	admin := ""
	s.firstStart(t, func(p int) {
		port = p
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		s.url = fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", pgUser, pgPassword, s.addr, pgDatabase)
		admin = fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable", pgSuperuser, s.addr)
	}, func(ctx context.Context) error { return pgQuery(ctx, admin) })

	ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: postgres on %s: %v", s.addr, err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'", pgUser, pgPassword),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgDatabase, pgUser),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("testenv: postgres on %s: %s: %v", s.addr, q, err)
		}
	}
	s.ready = func(ctx context.Context) error { return pgQuery(ctx, s.url) }
	if err := s.ready(ctx); err != nil {
		t.Fatalf("testenv: postgres on %s: %s does not work: %v", s.addr, s.url, err)
	}
	return s
}

// pgRemoveShm removes the System V shared memory segment of a postmaster
// that did not exit by itself (its postmaster.pid is left): a SIGKILL leaves
// the segment behind, and each one takes a slot of the kernel's small table.
func pgRemoveShm(t testing.TB, data string) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return // clean exit, or never started
	}
	// Line 7 holds the segment's key and id.
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return
	}
	if out, err := exec.Command("ipcrm", "-m", f[1]).CombinedOutput(); err != nil {
		t.Logf("testenv: removing shared memory %s of %s: %v: %s", f[1], data, err, out)
	}
}

// run runs a command to its end as the server's OS user, with its output in
// logPath.
func (s *Server) run(logPath, name string, args ...string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = s.procAttr()
	return cmd.Run()
}

// pgQuery connects to url and runs a query.
func pgQuery(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// ---- Redis ----

// StartRedis starts a redis-server of the test's own, the one
// MQTTPERSIST_REDIS_SERVER names, and returns once it answers PING. It keeps
// its data in an append-only file (appendonly yes, appendfsync everysec), so
// what was written survives Stop and Start. Without the variable, or when the
// binary is missing, the test ends through Unavailable.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	bin := Getenv(t, RedisServerEnv)
	if _, err := os.Stat(bin); err != nil {
		Unavailable(t, RedisServerEnv, "%v", err)
	}
	dir := t.TempDir()
	s := &Server{
		kind:       "redis",
		dir:        dir,
		logPath:    filepath.Join(dir, "redis.log"),
		stopSignal: syscall.SIGTERM, // SHUTDOWN: flush the AOF, exit
		killSignal: syscall.SIGKILL,
	}
	t.Cleanup(func() { s.cleanup(t) })
	conf := filepath.Join(dir, "redis.conf")
	s.command = func() *exec.Cmd { return exec.Command(bin, conf) }
	s.firstStart(t, func(port int) {
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.url = "redis://" + s.addr + "/0"
		err := os.WriteFile(conf, []byte(strings.Join([]string{
			"# testenv.StartRedis",
			"bind 127.0.0.1",
			"port " + strconv.Itoa(port),
			"daemonize no",
			`logfile ""`,
			"dir " + dir,
			`save ""`,
			"appendonly yes",
			"appendfsync everysec",
			"databases 16",
			"",
		}, "\n")), 0o644)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}, func(ctx context.Context) error { return redisPing(ctx, s.addr) })
	s.ready = func(ctx context.Context) error { return redisPing(ctx, s.addr) }
	return s
}

// redisPing sends PING to the Redis at addr and wants +PONG (not -LOADING,
// which a server answers while it reads its data back).
func redisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING: %s", line)
	}
	return nil
}
