package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
)

// netns is a network namespace the test made, joined to the test's own by
// a veth pair on a private /30: host is the address on the test's side,
// peer the one inside the namespace — "another host" for a broker run in
// it. The test connects to peer only.
type netns struct {
	name, veth, host, peer string
}

// ipCmd runs ip with args and returns its error with its output.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetns makes the namespace and the veth pair, removed at cleanup. It
// fails the test (never skips it) when the machine does not allow it.
func newNetns(t *testing.T) *netns {
	t.Helper()
	pid := os.Getpid()
	n := &netns{
		name: fmt.Sprintf("mqttp-%d", pid),
		veth: fmt.Sprintf("mqv%da", pid%1_000_000),
	}
	peerVeth := fmt.Sprintf("mqv%db", pid%1_000_000)
	// A /30 of 10.200.0.0/16 that no interface here uses.
	used, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip -o -4 addr show: %v", err)
	}
	for i := 0; ; i++ {
		if i == 64 {
			t.Fatal("no free /30 in 10.200.0.0/16 for the test's veth pair")
		}
		off := ((pid + i*7919) % 16384) * 4
		base := fmt.Sprintf("10.200.%d.", off>>8)
		n.host, n.peer = fmt.Sprintf("%s%d", base, off&255+1), fmt.Sprintf("%s%d", base, off&255+2)
		if !strings.Contains(string(used), " "+n.host+"/") && !strings.Contains(string(used), " "+n.peer+"/") {
			break
		}
	}
	_ = ipCmd("netns", "del", n.name) // left over from a killed run of this PID
	if err := ipCmd("netns", "add", n.name); err != nil {
		t.Fatalf("the loopback test needs a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ipCmd("link", "del", n.veth); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			t.Errorf("cleanup: %v", err)
		}
		if err := ipCmd("netns", "del", n.name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for _, args := range [][]string{
		{"link", "add", n.veth, "type", "veth", "peer", "name", peerVeth, "netns", n.name},
		{"addr", "add", n.host + "/30", "dev", n.veth},
		{"link", "set", n.veth, "up"},
		{"-n", n.name, "addr", "add", n.peer + "/30", "dev", peerVeth},
		{"-n", n.name, "link", "set", peerVeth, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			t.Fatalf("veth pair for the loopback test: %v", err)
		}
	}
	return n
}

// startIn runs the broker with args (no -listen of the tests' own) inside
// the namespace and waits until it listens.
func (n *netns) startIn(t *testing.T, args ...string) *broker {
	t.Helper()
	b := &broker{t: t, done: make(chan error, 1)}
	// ip netns exec execs the broker: the process is the broker's.
	b.cmd = exec.Command("ip", append([]string{"netns", "exec", n.name, brokerBin}, args...)...)
	b.cmd.Dir = t.TempDir()
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.cmd.Stderr = writerFunc(func(p []byte) { b.mu.Lock(); b.stderr.Write(p); b.mu.Unlock() })
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.mu.Lock()
			b.stdout.WriteString(sc.Text() + "\n")
			b.mu.Unlock()
			if _, a, ok := strings.Cut(sc.Text(), " listening on "); ok {
				addr <- a
			}
		}
		b.done <- b.cmd.Wait()
	}()
	select {
	case b.addr = <-addr:
	case err := <-b.done:
		t.Fatalf("broker %v in namespace %s exited: %v\n%s%s", args, n.name, err, b.out(), b.errOut())
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		t.Fatalf("broker %v in namespace %s did not listen in 30s\n%s", args, n.name, b.errOut())
	}
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// With no authentication configured and no -listen, a client on another
// host cannot connect: the broker runs in a network namespace and listens
// on its loopback only, so the namespace's address refuses the
// connection. The same namespace's address does take a broker started
// with -allow-anonymous (the path works), which warns at start.
func TestLoopbackDefault(t *testing.T) {
	n := newNetns(t)

	open := n.startIn(t, "-store", "none", "-allow-anonymous", "-listen", ":1884")
	waitOut(t, open, "WARNING: no authentication (-allow-anonymous): anyone who can reach :1884 can connect")
	waitLog(t, open, "no authentication: anyone can connect")
	c, err := mqtttest.DialErr(t, net.JoinHostPort(n.peer, "1884"), "from-outside", mqtttest.Options{Clean: true})
	if err != nil {
		t.Fatalf("-allow-anonymous -listen :1884 in the namespace: connect to %s:1884: %v", n.peer, err)
	}
	c.Disconnect()

	safe := n.startIn(t, "-store", "none")
	if safe.addr != "127.0.0.1:1883" {
		t.Errorf("default listen address %q, want 127.0.0.1:1883", safe.addr)
	}
	waitOut(t, safe, "no authentication configured (-auth, -tls-ca): loopback only")
	nc, err := net.DialTimeout("tcp", net.JoinHostPort(n.peer, "1883"), 5*time.Second)
	if err == nil {
		nc.Close()
		t.Fatalf("connected to %s:1883 from outside the namespace; the default broker listens beyond loopback", n.peer)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to %s:1883: %v; want connection refused (the address is reachable, nothing listens there)", n.peer, err)
	}
	open.stop()
	safe.stop()
}
