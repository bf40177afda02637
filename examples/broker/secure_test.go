package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// quietFor is how long a client stays connected after it got what it
// expects, to catch what it must not get.
const quietFor = 300 * time.Millisecond

// authFile writes an -auth file: alice may read and write everything, bob
// everything but secret/# and queue/secret/#, carol is disallowed.
func authFile(t *testing.T) string {
	return writeFile(t, t.TempDir(), "users.yaml", fmt.Sprintf(`users:
  alice:
    password: %q
    acl:
      "#": 3
  bob:
    password: %q
    acl:
      "secret/#": 0
      "queue/secret/#": 0
      "#": 3
  carol:
    password: %q
    disallow: true
`, bcryptHash(t, "alice-pw"), bcryptHash(t, "bob-pw"), bcryptHash(t, "carol-pw")))
}

var (
	alice = dialOpts{user: "alice", pass: "alice-pw"}
	bob   = dialOpts{user: "bob", pass: "bob-pw"}
)

func sess(o dialOpts) dialOpts  { o.expiry = 3600; return o }
func clean(o dialOpts) dialOpts { o.clean = true; return o }

// With -auth, clients without a user, with a wrong password, an unknown or
// a disallowed user are refused; a user without read permission on a
// topic gets none of its messages — live, replayed from the store, after
// a restart, retained, from a queue — and one with permission gets them
// all.
func TestAuthACL(t *testing.T) {
	users := authFile(t)
	store := testenv.SQLiteURL(t)
	b := startBroker(t, "-auth", users, "-store", store)
	waitOut(t, b, "authentication: 3 users, 0 auth rules, 0 acl rules from "+users)
	if strings.Contains(b.out(), "no authentication") {
		t.Fatalf("start lines:\n%s", b.out())
	}
	for _, c := range []struct {
		name string
		o    dialOpts
	}{
		{"anonymous", dialOpts{}},
		{"wrong password", dialOpts{user: "alice", pass: "bob-pw"}},
		{"no password", dialOpts{user: "alice"}},
		{"unknown user", dialOpts{user: "mallory", pass: "alice-pw"}},
		{"disallowed user", dialOpts{user: "carol", pass: "carol-pw"}},
	} {
		nc, err := dialTCP(b.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, rc, err := connect(t, nc, "intruder", c.o); err == nil || rc != 0x86 {
			t.Fatalf("%s: connect gave %v (reason %#x), want a refusal with 0x86 bad user name or password", c.name, err, rc)
		}
	}

	dial := func(id string, o dialOpts) *mqttClient {
		nc, err := dialTCP(b.addr)
		return mustConnect(t, nc, err, id, o)
	}
	as := dial("alice-sub", sess(alice))
	as.subscribe("#")
	bs := dial("bob-sub", sess(bob))
	bs.subscribe("#")
	if rc := bs.subscribeReason("secret/#"); rc != 0x87 {
		t.Fatalf("bob subscribing to secret/#: reason %#x, want 0x87 not authorized", rc)
	}
	pub := dial("alice-pub", clean(alice))

	// Live.
	pub.publish("secret/a", "live", false)
	pub.publish("public/a", "live", false)
	as.expect([]string{"secret/a=live", "public/a=live"}, 0)
	bs.expect([]string{"public/a=live"}, quietFor)

	// Replayed from the store at the next connection.
	as.disconnect()
	bs.disconnect()
	pub.publish("secret/b", "stored", false)
	pub.publish("public/b", "stored", false)
	as = dial("alice-sub", sess(alice))
	bs = dial("bob-sub", sess(bob))
	as.expect([]string{"secret/b=stored", "public/b=stored"}, 0)
	bs.expect([]string{"public/b=stored"}, quietFor)

	// After a restart, retained too.
	as.disconnect()
	bs.disconnect()
	pub.publish("secret/c", "restart", false)
	pub.publish("public/c", "restart", false)
	pub.publish("secret/r", "retained", true)
	pub.publish("public/r", "retained", true)
	pub.disconnect()
	b.stop()
	b = startBroker(t, "-auth", users, "-store", store)
	as = dial("alice-sub", sess(alice))
	bs = dial("bob-sub", sess(bob))
	as.expect([]string{"secret/c=restart", "public/c=restart", "secret/r=retained", "public/r=retained"}, 0)
	bs.expect([]string{"public/c=restart", "public/r=retained"}, quietFor)
	as2 := dial("alice-new", clean(alice))
	as2.subscribe("#")
	bs2 := dial("bob-new", clean(bob))
	bs2.subscribe("#")
	as2.expect([]string{"secret/r=retained", "public/r=retained"}, 0)
	bs2.expect([]string{"public/r=retained"}, quietFor)

	// Queue messages bob may not read go to alice, none stuck with bob.
	as2.disconnect()
	bs2.disconnect()
	pub = dial("alice-pub", clean(alice))
	var jobs []string
	for i := range 10 {
		pub.publish("queue/secret/jobs", fmt.Sprint("job", i), false)
		jobs = append(jobs, fmt.Sprint("queue/secret/jobs=job", i))
	}
	as.expect(append([]string{"secret/c=restart", "public/c=restart", "secret/r=retained", "public/r=retained"}, jobs...), 0)
	bs.expect([]string{"public/c=restart", "public/r=retained"}, quietFor)
}

// waitLog waits until the broker's stderr (its log) has s.
func waitLog(t *testing.T, b *broker, s string) { t.Helper(); waitText(t, "log", b.errOut, s) }

// waitOut waits until the broker's stdout has s (the lines after the
// listening line may come after startBroker returned).
func waitOut(t *testing.T, b *broker, s string) { t.Helper(); waitText(t, "print", b.out, s) }

func waitText(t *testing.T, what string, text func() string, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(text(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not %s %q:\n%s", what, s, text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGHUP reads the -auth file again: a new user can connect, and the new
// ACL holds for a client that stays connected (for persisted messages,
// which the adapter checks); a file that does not load keeps the rules.
func TestAuthReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	aliceHash, daveHash := bcryptHash(t, "alice-pw"), bcryptHash(t, "dave-pw")
	file := writeFile(t, dir, "users.yaml", fmt.Sprintf("users:\n  alice:\n    password: %q\n", aliceHash))
	b := startBroker(t, "-auth", file)
	dial := func(id string, o dialOpts) (*mqttClient, byte, error) {
		nc, err := dialTCP(b.addr)
		if err != nil {
			t.Fatal(err)
		}
		return connect(t, nc, id, o)
	}
	dave := dialOpts{user: "dave", pass: "dave-pw"}
	if _, rc, err := dial("dave", dave); err == nil || rc != 0x86 {
		t.Fatalf("dave before he is in the file: %v (reason %#x), want refused", err, rc)
	}
	as, _, err := dial("alice-sub", alice)
	if err != nil {
		t.Fatal(err)
	}
	as.subscribe("#")

	writeFile(t, dir, "users.yaml", fmt.Sprintf("users:\n  alice:\n    password: %q\n    acl:\n      \"x/#\": 0\n      \"#\": 3\n  dave:\n    password: %q\n", aliceHash, daveHash))
	b.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, b, "auth file reloaded")
	d, _, err := dial("dave", dave)
	if err != nil {
		t.Fatalf("dave after SIGHUP: %v", err)
	}
	d.publish("x/1", "denied now", false)
	d.publish("y/1", "allowed", false)
	as.expect([]string{"y/1=allowed"}, quietFor)

	writeFile(t, dir, "users.yaml", "users:\n  dave:\n    password: plain-text\n")
	b.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, b, "the auth file did not load")
	if !strings.Contains(b.errOut(), "not a bcrypt hash") {
		t.Errorf("the log does not say why the file did not load:\n%s", b.errOut())
	}
	if _, _, err := dial("dave-again", dave); err != nil {
		t.Fatalf("dave after a bad file: %v; want the rules in force kept", err)
	}
}

// -hash-password prints a bcrypt hash of the password on stdin.
func TestHashPassword(t *testing.T) {
	cmd := exec.Command(brokerBin, "-hash-password")
	cmd.Stdin = strings.NewReader("s3cret pass\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("-hash-password: %v", err)
	}
	h := strings.TrimSpace(string(out))
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret pass")); err != nil {
		t.Fatalf("-hash-password printed %q: %v", out, err)
	}
	cmd = exec.Command(brokerBin, "-hash-password")
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "empty password") {
		t.Fatalf("-hash-password of nothing: %v\n%s", err, out)
	}
}

// Settings that would open the broker, or that do not hold together, stop
// it at start with a message saying what to do.
func TestSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	good := authFile(t)
	plain := writeFile(t, dir, "plain.yaml", "users:\n  alice:\n    password: alice-pw\n")
	typo := writeFile(t, dir, "typo.yaml", fmt.Sprintf("users:\n  alice:\n    pasword: %q\n", bcryptHash(t, "x")))
	access := writeFile(t, dir, "access.yaml", fmt.Sprintf("users:\n  alice:\n    password: %q\n    acl:\n      \"#\": 7\n", bcryptHash(t, "x")))
	open := writeFile(t, dir, "open.yaml", "listen: \":0\"\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-listen", ":0"}, "-listen :0: beyond loopback, and no authentication is configured: give -auth FILE"},
		{[]string{"-listen", "0.0.0.0:0"}, "-allow-anonymous to let anyone"},
		{[]string{"-listen", "[::]:0"}, "-allow-anonymous"},
		{[]string{"-listen", "example.com:0"}, "-allow-anonymous"},
		{[]string{"-ws", ":18083"}, "-ws :18083: beyond loopback"},
		{[]string{"-config", open}, "-config " + open + ": listen :0: beyond loopback"},
		{[]string{"-auth", dir + "/missing.yaml"}, "no such file"},
		{[]string{"-auth", plain}, "users: alice: the password is not a bcrypt hash (make one with: broker -hash-password)"},
		{[]string{"-auth", typo}, "field pasword not found"},
		{[]string{"-auth", access}, "access 7"},
		{[]string{"-auth", good, "-allow-anonymous"}, "-allow-anonymous with -auth"},
		{[]string{"-tls-cert", good}, "-tls-cert and -tls-key: give both"},
		{[]string{"-tls-cert", good, "-tls-key", good}, "-tls-cert " + good},
		{[]string{"-ws", "127.0.0.1:0"}, "give a port"},
	} {
		cmd := exec.Command(brokerBin, append([]string{"-store", "none"}, c.args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("broker %v: %v\n%s\nwant an error with %q", c.args, err, out, c.want)
		}
	}
}

// TLS: with -tls-ca, a client with a certificate the CA signed connects
// (over TCP and over wss) and one without a certificate, with one of
// another CA, or not trusting the broker's certificate does not.
func TestTLS(t *testing.T) {
	ca := newPKI(t, "test")
	_, certFile, keyFile := ca.issue(t, "broker", true)
	client, _, _ := ca.issue(t, "client", false)
	other := newPKI(t, "other")
	intruder, _, _ := other.issue(t, "intruder", false)
	ws := freePort(t)
	b := startBroker(t, "-tls-cert", certFile, "-tls-key", keyFile, "-tls-ca", ca.CAFile, "-ws", ws)
	waitOut(t, b, "clients must present a certificate signed by "+ca.CAFile)
	waitOut(t, b, "MQTT over WebSocket at wss://"+ws+"/")
	conf := func(cert *tls.Certificate, roots *x509.CertPool) *tls.Config {
		c := &tls.Config{RootCAs: roots}
		if cert != nil {
			c.Certificates = []tls.Certificate{*cert}
		}
		return c
	}
	dialTLS := func(c *tls.Config) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", b.addr, c)
	}
	for _, c := range []struct {
		name string
		conf *tls.Config
	}{
		{"no client certificate", conf(nil, ca.pool)},
		{"a certificate of another CA", conf(&intruder, ca.pool)},
		{"not trusting the broker", conf(&client, other.pool)},
	} {
		nc, err := dialTLS(c.conf)
		if err == nil {
			_, _, err = connect(t, nc, "intruder", clean(dialOpts{}))
		}
		if err == nil {
			t.Fatalf("%s: connected", c.name)
		}
		t.Logf("%s: %v", c.name, err)
	}
	good := conf(&client, ca.pool)
	nc, err := dialTLS(good)
	sub := mustConnect(t, nc, err, "tls-sub", sess(dialOpts{}))
	sub.subscribe("t/#")
	nc, err = dialWS("wss://"+ws+"/mqtt", good)
	wsSub := mustConnect(t, nc, err, "wss-sub", clean(dialOpts{}))
	wsSub.subscribe("t/#")
	nc, err = dialWS("wss://"+ws+"/mqtt", good)
	pub := mustConnect(t, nc, err, "wss-pub", clean(dialOpts{}))
	pub.publish("t/1", "over wss", false)
	sub.expect([]string{"t/1=over wss"}, 0)
	wsSub.expect([]string{"t/1=over wss"}, quietFor)
	if _, err := dialWS("wss://"+ws+"/mqtt", conf(nil, ca.pool)); err == nil {
		t.Fatal("wss without a client certificate: connected")
	}
}

// A WebSocket client connects with a user and password, gets messages
// published over TCP live and, after a reconnect, from the store, and
// publishes to TCP subscribers; one without a user is refused.
func TestWebSocket(t *testing.T) {
	ws := freePort(t)
	b := startBroker(t, "-auth", authFile(t), "-ws", ws)
	url := "ws://" + ws + "/mqtt"
	waitOut(t, b, "MQTT over WebSocket at ws://"+ws+"/")
	nc, err := dialWS(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, rc, err := connect(t, nc, "anonymous", clean(dialOpts{})); err == nil || rc != 0x86 {
		t.Fatalf("anonymous over WebSocket: %v (reason %#x), want refused", err, rc)
	}
	nc, err = dialWS(url, nil)
	wsSub := mustConnect(t, nc, err, "ws-sub", sess(alice))
	wsSub.subscribe("t/#")
	nc, err = dialTCP(b.addr)
	tcp := mustConnect(t, nc, err, "tcp-client", sess(alice))
	tcp.subscribe("from-ws/#")
	tcp.publish("t/live", "1", false)
	wsSub.expect([]string{"t/live=1"}, 0)
	wsSub.disconnect()
	tcp.publish("t/stored", "2", false)
	nc, err = dialWS(url, nil)
	wsSub = mustConnect(t, nc, err, "ws-sub", sess(alice))
	wsSub.expect([]string{"t/stored=2"}, 0)
	wsSub.publish("from-ws/x", "3", false)
	tcp.expect([]string{"from-ws/x=3"}, quietFor)
}
