package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Who may connect, and how. As Mosquitto does since 2.0, the broker with
// no authentication configured listens on loopback only and says so;
// listening beyond it without authentication takes -allow-anonymous, and
// the broker then warns at start. Authentication is an -auth file (users,
// bcrypt passwords and ACLs: auth.go) or -tls-ca (clients must present a
// certificate that CA signed: tls.go).

// SecurityConfig holds the -config file's keys for the listeners,
// authentication and TLS; each is the flag of the same name (with _ for
// -), and a flag given on the command line wins.
type SecurityConfig struct {
	Listen         string `yaml:"listen"`
	WS             string `yaml:"ws"`
	Auth           string `yaml:"auth"`
	AllowAnonymous bool   `yaml:"allow_anonymous"`
	TLSCert        string `yaml:"tls_cert"`
	TLSKey         string `yaml:"tls_key"`
	TLSCA          string `yaml:"tls_ca"`
}

// securityFlags are the command line's side of SecurityConfig.
type securityFlags struct {
	listen, ws, auth, tlsCert, tlsKey, tlsCA *string
	allowAnonymous, hashPassword             *bool
}

// addSecurityFlags defines the listener, authentication and TLS flags.
func addSecurityFlags(fs *flag.FlagSet) *securityFlags {
	return &securityFlags{
		listen:         fs.String("listen", "", "`address` the MQTT listener (TCP) binds (default 127.0.0.1:1883 without authentication, :1883 with it; port 8883 with TLS)"),
		ws:             fs.String("ws", "", "`address` of a WebSocket listener for MQTT over WebSocket (wss with -tls-cert); empty: none"),
		auth:           fs.String("auth", "", "`file` of users (bcrypt passwords) and ACLs: mochi's auth ledger in YAML or JSON (see examples/broker/auth.go); re-read on SIGHUP"),
		allowAnonymous: fs.Bool("allow-anonymous", false, "let anyone connect, publish and subscribe on listeners beyond loopback without authentication"),
		hashPassword:   fs.Bool("hash-password", false, "read a password from stdin, print its bcrypt hash for the -auth file, and exit"),
		tlsCert:        fs.String("tls-cert", "", "PEM `file` of the server certificate (chain): the listeners speak TLS"),
		tlsKey:         fs.String("tls-key", "", "PEM `file` of the server certificate's private key"),
		tlsCA:          fs.String("tls-ca", "", "PEM `file` of the CA certificates that sign client certificates: every client must present one"),
	}
}

// hash handles -hash-password; it reports whether it did.
func (f *securityFlags) hash(stdout, stderr io.Writer) (bool, error) {
	if !*f.hashPassword {
		return false, nil
	}
	return true, hashPassword(os.Stdin, stdout, stderr)
}

// security is who may connect and on which listeners, resolved from the
// flags and the config file.
type security struct {
	listen    string
	ws        string
	anonymous bool      // -allow-anonymous
	auth      *authHook // -auth, or nil
	tls       *tlsFiles // -tls-cert, or nil
}

// resolve merges the flags with the config file's keys (given: the flags
// on the command line) and loads the auth and TLS files.
func (f *securityFlags) resolve(c SecurityConfig, given map[string]bool, configFile string) (*security, error) {
	pick := func(name string, flagValue *string, configValue string) (string, string) {
		if given[name] || configValue == "" {
			return *flagValue, "-" + name
		}
		return configValue, "-config " + configFile + ": " + strings.ReplaceAll(name, "-", "_")
	}
	s := &security{anonymous: *f.allowAnonymous || (!given["allow-anonymous"] && c.AllowAnonymous)}
	if file, _ := pick("auth", f.auth, c.Auth); file != "" {
		h, err := newAuthHook(file)
		if err != nil {
			return nil, err
		}
		s.auth = h
	}
	if s.anonymous && s.auth != nil {
		return nil, errors.New("-allow-anonymous with -auth: the auth file decides who may connect (an auth rule with allow: true lets in the clients it matches)")
	}
	cert, _ := pick("tls-cert", f.tlsCert, c.TLSCert)
	key, _ := pick("tls-key", f.tlsKey, c.TLSKey)
	ca, _ := pick("tls-ca", f.tlsCA, c.TLSCA)
	t, err := newTLS(cert, key, ca)
	if err != nil {
		return nil, err
	}
	s.tls = t
	listen, listenFrom := pick("listen", f.listen, c.Listen)
	if listen == "" {
		host, port := "127.0.0.1", "1883"
		if s.authenticated() || s.anonymous {
			host = ""
		}
		if s.tls != nil {
			port = "8883"
		}
		listen = net.JoinHostPort(host, port)
	}
	s.listen = listen
	ws, wsFrom := pick("ws", f.ws, c.WS)
	s.ws = ws
	if !s.authenticated() && !s.anonymous {
		for _, l := range []struct{ addr, from string }{{listen, listenFrom}, {ws, wsFrom}} {
			if l.addr != "" && !isLoopback(l.addr) {
				return nil, fmt.Errorf("%s %s: beyond loopback, and no authentication is configured: give -auth FILE (users and ACLs) or -tls-ca FILE (client certificates), or -allow-anonymous to let anyone who can reach %s connect, publish and subscribe", l.from, l.addr, l.addr)
			}
		}
	}
	return s, nil
}

// authenticated reports whether clients must prove who they are: with an
// -auth file, or with client certificates (-tls-ca).
func (s *security) authenticated() bool {
	return s.auth != nil || (s.tls != nil && s.tls.ca != "")
}

// isLoopback reports whether a listen address binds loopback only: an IP
// address that is loopback, or localhost. An empty host (every interface)
// or any other name is not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// addHooks adds the authentication hook: the -auth file's, or mochi's
// allow-all one.
func (s *security) addHooks(server *mqtt.Server) error {
	if s.auth != nil {
		if err := server.AddHook(s.auth, nil); err != nil {
			return fmt.Errorf("auth hook: %w", err)
		}
		return nil
	}
	return server.AddHook(new(auth.AllowHook), nil)
}

// acl is the read rule for persisted messages (persist/mochi's
// Options.ACL): the -auth file's, or nil.
func (s *security) acl() func(cl *mqtt.Client, topic string, write bool) bool {
	if s.auth == nil {
		return nil
	}
	return s.auth.OnACLCheck
}

// addListeners adds the MQTT listener (with TLS when configured) and the
// WebSocket one.
func (s *security) addListeners(server *mqtt.Server) error {
	tcpTLS, wsTLS := s.tlsConfig(), s.tlsConfig()
	if err := server.AddListener(listeners.NewTCP(listeners.Config{Type: listeners.TypeTCP, ID: "tcp", Address: s.listen, TLSConfig: tcpTLS})); err != nil {
		return fmt.Errorf("listen %s: %w", s.listen, err)
	}
	if s.ws != "" {
		return addWebsocket(server, s.ws, wsTLS)
	}
	return nil
}

func (s *security) tlsConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.config()
}

// announce prints the start lines: who may connect, the listeners.
func (s *security) announce(stdout io.Writer, log *slog.Logger, server *mqtt.Server, node string) {
	if s.auth != nil {
		fmt.Fprintf(stdout, "mqttpersist broker: authentication: %s\n", s.auth.summary())
	}
	if s.tls != nil {
		fmt.Fprintf(stdout, "mqttpersist broker: %s\n", s.tls.describe())
	}
	addr := listenerAddr(server, s.listen)
	if !s.authenticated() {
		var open []string
		for _, a := range []string{s.listen, s.ws} {
			if a != "" && !isLoopback(a) {
				open = append(open, a)
			}
		}
		if len(open) > 0 {
			fmt.Fprintf(stdout, "mqttpersist broker: WARNING: no authentication (-allow-anonymous): anyone who can reach %s can connect, publish and subscribe\n", strings.Join(open, " or "))
			log.Warn("no authentication: anyone can connect, publish and subscribe", "listeners", strings.Join(open, ", "))
		} else {
			fmt.Fprintln(stdout, "mqttpersist broker: no authentication configured (-auth, -tls-ca): loopback only, for clients on this machine")
		}
	}
	fmt.Fprintf(stdout, "mqttpersist broker: node %s listening on %s\n", node, addr)
	if s.ws != "" {
		scheme := "ws"
		if s.tls != nil {
			scheme = "wss"
		}
		fmt.Fprintf(stdout, "mqttpersist broker: MQTT over WebSocket at %s://%s/\n", scheme, s.ws)
	}
}

// reloadOnHUP reads the auth and TLS files again on each SIGHUP until ctx
// is done.
func (s *security) reloadOnHUP(ctx context.Context, log *slog.Logger) {
	if s.auth == nil && s.tls == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if s.auth != nil {
				if err := s.auth.reload(); err != nil {
					log.Error("SIGHUP: the auth file did not load; the rules in force stay", "error", err)
				} else {
					log.Info("SIGHUP: auth file reloaded", "rules", s.auth.summary())
				}
			}
			if s.tls != nil {
				if err := s.tls.reload(); err != nil {
					log.Error("SIGHUP: the TLS files did not load; the ones in force stay", "error", err)
				} else {
					log.Info("SIGHUP: TLS files reloaded", "cert", s.tls.cert)
				}
			}
		}
	}()
}
