package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
	"gopkg.in/yaml.v3"
)

// The -auth file is mochi's auth ledger (github.com/mochi-mqtt/server/v2/
// hooks/auth), in YAML or JSON, with every password a bcrypt hash (make
// one with -hash-password):
//
//	users:                          # checked first, by user name
//	  alice:
//	    password: "$2a$10$…"        # bcrypt
//	    acl:                        # filter → 0 deny, 1 read, 2 write, 3 read and write
//	      "sensors/#": 3
//	  bob:
//	    password: "$2a$10$…"
//	    acl:
//	      "secret/#": 0             # the most specific matching filter decides
//	      "#": 1
//	auth:                           # then rules, in order; the first that matches decides
//	  - username: "svc-*"           # "" or "*": anyone; "x*": starts with x
//	    password: "$2a$10$…"        # empty: any password
//	    remote: "10.0.0.*"
//	    allow: true
//	acl:                            # for users without acl of their own, in order
//	  - username: "svc-*"
//	    filters:
//	      "jobs/#": 3
//
// It is evaluated as mochi's ledger does, with two differences: passwords
// are compared as bcrypt hashes, and when several of a user's filters match
// a topic, the most specific one decides (literal levels before '+',
// '+' before '#'), where mochi picks one at random. A topic that no rule
// names is allowed, as in mochi: deny the rest with "#": 0. Unknown keys
// are errors, so a typo stops the broker instead of opening a topic.
//
// The same read rules apply to persisted messages, live and replayed
// (persist/mochi's Options.ACL). SIGHUP reads the file again; connected
// clients stay connected, and their next publishes and deliveries follow
// the new rules. A file that does not load keeps the old rules.

// authHook authenticates clients and checks topics against an -auth file.
type authHook struct {
	mqtt.HookBase
	file   string
	ledger atomic.Pointer[auth.Ledger]
	// dummy is a hash at the users' cost, compared for a user who is not
	// there as long as for a wrong password.
	dummy atomic.Pointer[[]byte]
}

func newAuthHook(file string) (*authHook, error) {
	h := &authHook{file: file}
	if err := h.reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// ID names the hook.
func (h *authHook) ID() string { return "auth-file" }

// Provides reports the hook's methods: authentication and ACL checks.
func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// Init takes no configuration: the file was read by newAuthHook.
func (h *authHook) Init(any) error { return nil }

// reload reads the file again; on an error the rules in force stay.
func (h *authHook) reload() error {
	l, err := loadLedger(h.file)
	if err != nil {
		return err
	}
	cost := bcrypt.DefaultCost
	for _, u := range l.Users {
		if c, err := bcrypt.Cost([]byte(u.Password)); err == nil {
			cost = c
			break
		}
	}
	d, err := bcrypt.GenerateFromPassword([]byte("no such user"), cost)
	if err != nil {
		return err
	}
	h.ledger.Store(l)
	h.dummy.Store(&d)
	return nil
}

// summary describes the rules in force, for the start line.
func (h *authHook) summary() string {
	l := h.ledger.Load()
	return fmt.Sprintf("%d users, %d auth rules, %d acl rules from %s", len(l.Users), len(l.Auth), len(l.ACL), h.file)
}

// OnConnectAuthenticate lets a client in when its user's password matches,
// or else when the first auth rule that matches it allows it.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	l := h.ledger.Load()
	user := string(cl.Properties.Username)
	pass := pk.Connect.Password
	if u, ok := l.Users[user]; ok && u.Password != "" {
		if bcrypt.CompareHashAndPassword([]byte(u.Password), pass) == nil {
			return !u.Disallow
		}
	} else {
		_ = bcrypt.CompareHashAndPassword(*h.dummy.Load(), pass)
	}
	for _, r := range l.Auth {
		if r.Client.Matches(cl.ID) && r.Username.Matches(user) && r.Remote.Matches(cl.Net.Remote) && passwordMatches(r.Password, pass) {
			return r.Allow
		}
	}
	if h.Log != nil {
		h.Log.Info("client refused: bad user name or password", "client", cl.ID, "username", user, "remote", cl.Net.Remote)
	}
	return false
}

// OnACLCheck reports whether the client may read (subscribe to, be sent)
// or write (publish to) topic.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	l := h.ledger.Load()
	user := string(cl.Properties.Username)
	if u, ok := l.Users[user]; ok && len(u.ACL) > 0 {
		if a, ok := mostSpecific(u.ACL, topic); ok {
			return allows(a, write)
		}
	}
	for _, r := range l.ACL {
		if !r.Client.Matches(cl.ID) || !r.Username.Matches(user) || !r.Remote.Matches(cl.Net.Remote) {
			continue
		}
		if len(r.Filters) == 0 {
			return true
		}
		named := false
		for f, a := range r.Filters {
			if f.FilterMatches(topic) {
				if allows(a, write) {
					return true
				}
				named = true
			}
		}
		if named {
			return false
		}
	}
	return true
}

func allows(a auth.Access, write bool) bool {
	if write {
		return a == auth.WriteOnly || a == auth.ReadWrite
	}
	return a == auth.ReadOnly || a == auth.ReadWrite
}

// mostSpecific returns the access of the most specific filter of fs that
// matches topic.
func mostSpecific(fs auth.Filters, topic string) (auth.Access, bool) {
	best, found := "", false
	for f := range fs {
		if f.FilterMatches(topic) && (!found || moreSpecific(string(f), best)) {
			best, found = string(f), true
		}
	}
	return fs[auth.RString(best)], found
}

// moreSpecific reports whether filter a is more specific than b: at the
// first level where they differ, a literal beats '+' and '+' beats '#';
// then the longer one; then the byte order, so the choice never depends
// on a map's order.
func moreSpecific(a, b string) bool {
	rank := func(level string) int {
		switch level {
		case "#":
			return 0
		case "+":
			return 1
		}
		return 2
	}
	pa, pb := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if ra, rb := rank(pa[i]), rank(pb[i]); ra != rb {
			return ra > rb
		}
	}
	if len(pa) != len(pb) {
		return len(pa) > len(pb)
	}
	return a < b
}

// passwordMatches applies an auth rule's password: "" or "*" is any
// password, anything else a bcrypt hash.
func passwordMatches(rule auth.RString, pass []byte) bool {
	if rule == "" || rule == "*" {
		return true
	}
	return bcrypt.CompareHashAndPassword([]byte(rule), pass) == nil
}

// loadLedger reads and checks an -auth file.
func loadLedger(file string) (*auth.Ledger, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("-auth: %w", err)
	}
	l := &auth.Ledger{}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(l)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err = dec.Decode(l); errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("-auth %s: %w", file, err)
	}
	if err := checkLedger(l); err != nil {
		return nil, fmt.Errorf("-auth %s: %w", file, err)
	}
	return l, nil
}

// checkLedger refuses what mochi's ledger would take in silence: plain
// text passwords, a user without one, access values beyond 3.
func checkLedger(l *auth.Ledger) error {
	names := make([]string, 0, len(l.Users))
	for name := range l.Users {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		u := l.Users[name]
		switch {
		case name == "":
			return errors.New(`users: a user with an empty name (clients without a user name are matched by auth rules)`)
		case u.Username != "" && string(u.Username) != name:
			return fmt.Errorf("users: %s: username %q differs from the key (the key is the user name)", name, u.Username)
		case u.Password == "" && !u.Disallow:
			return fmt.Errorf("users: %s: no password (make a bcrypt hash with: broker -hash-password)", name)
		}
		if u.Password != "" && !isHash(string(u.Password)) {
			return fmt.Errorf("users: %s: the password is not a bcrypt hash (make one with: broker -hash-password)", name)
		}
		if err := checkAccess(u.ACL); err != nil {
			return fmt.Errorf("users: %s: acl: %w", name, err)
		}
	}
	for i, r := range l.Auth {
		if r.Password != "" && r.Password != "*" && !isHash(string(r.Password)) {
			return fmt.Errorf("auth rule %d: the password is not a bcrypt hash (make one with: broker -hash-password)", i)
		}
	}
	for i, r := range l.ACL {
		if err := checkAccess(r.Filters); err != nil {
			return fmt.Errorf("acl rule %d: %w", i, err)
		}
	}
	return nil
}

func checkAccess(fs auth.Filters) error {
	for f, a := range fs {
		if a > auth.ReadWrite {
			return fmt.Errorf("filter %q: access %d (want 0 deny, 1 read, 2 write or 3 read and write)", f, a)
		}
	}
	return nil
}

func isHash(s string) bool {
	_, err := bcrypt.Cost([]byte(s))
	return err == nil
}

// hashPassword reads a password from stdin (without echo on a terminal,
// twice) and prints its bcrypt hash for the -auth file.
func hashPassword(stdin *os.File, stdout, stderr io.Writer) error {
	var pass []byte
	if fd := int(stdin.Fd()); term.IsTerminal(fd) {
		fmt.Fprint(stderr, "password: ")
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return err
		}
		fmt.Fprint(stderr, "again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return err
		}
		if !bytes.Equal(p, again) {
			return errors.New("-hash-password: the passwords differ")
		}
		pass = p
	} else {
		line, err := bufio.NewReader(stdin).ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		pass = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	}
	if len(pass) == 0 {
		return errors.New("-hash-password: empty password")
	}
	h, err := bcrypt.GenerateFromPassword(pass, bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("-hash-password: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n", h)
	return nil
}
