package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// tlsFiles are the -tls-cert, -tls-key and -tls-ca files. With a
// certificate and key, the MQTT listener speaks MQTT over TLS and the
// WebSocket listener serves wss; with a CA too, every client must present
// a certificate that CA signed (which counts as authentication: see
// security.authenticated). SIGHUP reads the files again (a renewed
// certificate is used for the next connections); files that do not load
// keep the ones in force.
type tlsFiles struct {
	cert, key, ca string
	cur           atomic.Pointer[tls.Config]
}

// newTLS loads the files; nil without a certificate.
func newTLS(cert, key, ca string) (*tlsFiles, error) {
	switch {
	case cert == "" && key == "" && ca == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, errors.New("-tls-cert and -tls-key: give both (and -tls-ca to ask clients for certificates)")
	}
	t := &tlsFiles{cert: cert, key: key, ca: ca}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// reload reads the files again.
func (t *tlsFiles) reload() error {
	pair, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return fmt.Errorf("-tls-cert %s, -tls-key %s: %w", t.cert, t.key, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if t.ca != "" {
		pem, err := os.ReadFile(t.ca)
		if err != nil {
			return fmt.Errorf("-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-tls-ca %s: no PEM certificate in it", t.ca)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	t.cur.Store(c)
	return nil
}

// config is the listeners' TLS configuration: each handshake takes the
// files loaded last.
func (t *tlsFiles) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.cur.Load(), nil
		},
	}
}

// describe says what the listeners ask of clients, for the start lines.
func (t *tlsFiles) describe() string {
	if t.ca == "" {
		return fmt.Sprintf("TLS with %s (clients are not asked for certificates)", t.cert)
	}
	return fmt.Sprintf("TLS with %s; clients must present a certificate signed by %s", t.cert, t.ca)
}
