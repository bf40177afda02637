package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The rules of auth.go and security.go, in process.

func client(id, user, remote string) *mqtt.Client {
	return &mqtt.Client{ID: id, Net: mqtt.ClientConnection{Remote: remote}, Properties: mqtt.ClientProperties{Username: []byte(user)}}
}

func hookFor(t *testing.T, yaml string) *authHook {
	t.Helper()
	h, err := newAuthHook(writeFile(t, t.TempDir(), "auth.yaml", yaml))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A user's most specific matching filter decides, whatever the order of
// the map; the generic rules apply to users without acl of their own, the
// first rule that names the topic deciding; a topic no rule names is
// allowed.
func TestACLRules(t *testing.T) {
	h := hookFor(t, fmt.Sprintf(`users:
  bob:
    password: %q
    acl:
      "#": 1
      "a/#": 0
      "a/+/c": 3
      "a/b/c": 1
      "w/#": 2
acl:
  - username: "svc-*"
    filters:
      "jobs/#": 3
      "jobs/secret/#": 0
  - remote: "10.1.*"
    filters:
      "lan/#": 1
`, bcryptHash(t, "x")))
	bob, svc, lan, other := client("b", "bob", "127.0.0.1:1"), client("s", "svc-1", "127.0.0.1:1"), client("l", "", "10.1.2.3:4"), client("o", "", "127.0.0.1:1")
	for _, c := range []struct {
		cl    *mqtt.Client
		topic string
		write bool
		want  bool
	}{
		{bob, "x", false, true}, // "#": 1
		{bob, "x", true, false},
		{bob, "a/x", false, false},  // "a/#": 0 beats "#"
		{bob, "a/x/c", true, true},  // "a/+/c": 3 beats "a/#"
		{bob, "a/b/c", true, false}, // "a/b/c": 1 beats "a/+/c"
		{bob, "a/b/c", false, true},
		{bob, "w/1", true, true},
		{bob, "w/1", false, false},
		{svc, "jobs/1", true, true},
		{svc, "jobs/secret/1", false, true}, // in a generic rule an allowing filter wins, as in mochi
		{svc, "other", false, true},         // named by no rule
		{lan, "lan/x", false, true},
		{lan, "lan/x", true, false}, // the rule names it, without write
		{other, "lan/x", true, true},
	} {
		for range 20 { // map order must not matter
			if got := h.OnACLCheck(c.cl, c.topic, c.write); got != c.want {
				t.Fatalf("%s %q write=%v: %v, want %v", c.cl.Properties.Username, c.topic, c.write, got, c.want)
			}
		}
	}
}

// Users are checked first (bcrypt), then auth rules in order, with their
// patterns and hashed or any passwords.
func TestAuthRules(t *testing.T) {
	h := hookFor(t, fmt.Sprintf(`users:
  alice:
    password: %q
  carol:
    password: %q
    disallow: true
auth:
  - username: "svc-*"
    password: %q
    remote: "10.0.*"
    allow: true
  - client: "kiosk-*"
    allow: true
  - username: "*"
    allow: false
`, bcryptHash(t, "alice-pw"), bcryptHash(t, "carol-pw"), bcryptHash(t, "svc-pw")))
	connect := func(id, user, pass, remote string) bool {
		return h.OnConnectAuthenticate(client(id, user, remote), packets.Packet{Connect: packets.ConnectParams{Username: []byte(user), Password: []byte(pass)}})
	}
	for _, c := range []struct {
		id, user, pass, remote string
		want                   bool
	}{
		{"a", "alice", "alice-pw", "127.0.0.1:1", true},
		{"a", "alice", "wrong", "127.0.0.1:1", false},
		{"a", "alice", "", "127.0.0.1:1", false},
		{"c", "carol", "carol-pw", "127.0.0.1:1", false},
		{"s", "svc-1", "svc-pw", "10.0.3.4:5", true},
		{"s", "svc-1", "svc-pw", "192.168.0.1:5", false},
		{"s", "svc-1", "alice-pw", "10.0.3.4:5", false},
		{"kiosk-7", "", "", "127.0.0.1:1", true},
		{"x", "", "", "127.0.0.1:1", false},
	} {
		if got := connect(c.id, c.user, c.pass, c.remote); got != c.want {
			t.Errorf("client %q user %q password %q from %s: %v, want %v", c.id, c.user, c.pass, c.remote, got, c.want)
		}
	}
}

// Without authentication the broker listens on loopback only: that is its
// default, and anything else needs -allow-anonymous; with -auth or -tls-ca
// it listens everywhere by default.
func TestListenRule(t *testing.T) {
	dir := t.TempDir()
	users := writeFile(t, dir, "users.yaml", fmt.Sprintf("users:\n  a:\n    password: %q\n", bcryptHash(t, "x")))
	ca := newPKI(t, "test")
	_, cert, key := ca.issue(t, "broker", true)
	for _, c := range []struct {
		args   string
		cfg    SecurityConfig
		listen string // "" for an error
	}{
		{"", SecurityConfig{}, "127.0.0.1:1883"},
		{"-listen 127.0.0.1:1999", SecurityConfig{}, "127.0.0.1:1999"},
		{"-listen [::1]:1883", SecurityConfig{}, "[::1]:1883"},
		{"-listen localhost:1883", SecurityConfig{}, "localhost:1883"},
		{"-listen :1883", SecurityConfig{}, ""},
		{"-listen 10.0.0.1:1883", SecurityConfig{}, ""},
		{"-allow-anonymous", SecurityConfig{}, ":1883"},
		{"", SecurityConfig{AllowAnonymous: true}, ":1883"},
		{"-allow-anonymous=false", SecurityConfig{AllowAnonymous: true}, "127.0.0.1:1883"},
		{"-auth " + users, SecurityConfig{}, ":1883"},
		{"", SecurityConfig{Auth: users, Listen: "0.0.0.0:1883"}, "0.0.0.0:1883"},
		{"-tls-cert " + cert + " -tls-key " + key, SecurityConfig{}, "127.0.0.1:8883"},
		{"-tls-cert " + cert + " -tls-key " + key + " -listen :8883", SecurityConfig{}, ""},
		{"-tls-cert " + cert + " -tls-key " + key + " -tls-ca " + ca.CAFile, SecurityConfig{}, ":8883"},
		{"-ws 0.0.0.0:8083", SecurityConfig{}, ""},
		{"-ws 127.0.0.1:8083", SecurityConfig{}, "127.0.0.1:1883"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		sf := addSecurityFlags(fs)
		if err := fs.Parse(strings.Fields(c.args)); err != nil {
			t.Fatal(err)
		}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		s, err := sf.resolve(c.cfg, given, "config.yaml")
		switch {
		case c.listen == "" && err == nil:
			t.Errorf("%q %+v: listens on %s, want an error", c.args, c.cfg, s.listen)
		case c.listen == "" && !strings.Contains(err.Error(), "-allow-anonymous"):
			t.Errorf("%q %+v: %v, want it to name -allow-anonymous", c.args, c.cfg, err)
		case c.listen != "" && err != nil:
			t.Errorf("%q %+v: %v", c.args, c.cfg, err)
		case c.listen != "" && s.listen != c.listen:
			t.Errorf("%q %+v: listens on %s, want %s", c.args, c.cfg, s.listen, c.listen)
		}
	}
}
