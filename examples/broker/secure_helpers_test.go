package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
)

// The helpers of the security tests: a client that dials over any
// connection (TCP, TLS, WebSocket) with a user name and password, files
// for -auth, and certificates made for the test.

// dialOpts are a connect's options.
type dialOpts struct {
	user, pass string
	clean      bool
	expiry     uint32 // session expiry, seconds
}

// mqttClient is a paho MQTT 5 client that records what it receives.
type mqttClient struct {
	t    testing.TB
	id   string
	pc   *paho.Client
	mu   sync.Mutex
	got  []*paho.Publish
	more chan struct{}
	acks *mqtttest.AckSession
}

// connect runs MQTT over nc; on a refusal it returns the CONNACK's reason
// code (0 when the connection failed before one).
func connect(t testing.TB, nc net.Conn, id string, o dialOpts) (*mqttClient, byte, error) {
	t.Helper()
	c := &mqttClient{t: t, id: id, more: make(chan struct{}, 1), acks: mqtttest.NewAckSession()}
	c.pc = paho.NewClient(paho.ClientConfig{
		// paho writes from several goroutines; a packet goes out whole
		// under the wrapper's lock (a TLS or WebSocket connection may take
		// it in several writes).
		Conn:    packets.NewThreadSafeConn(nc),
		Session: c.acks,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			if r.Packet.QoS > 0 {
				c.acks.Expect()
			}
			c.mu.Lock()
			c.got = append(c.got, r.Packet)
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
			return true, nil
		}},
	})
	cp := &paho.Connect{ClientID: id, CleanStart: o.clean, KeepAlive: 30, Properties: &paho.ConnectProperties{}}
	if o.expiry > 0 {
		cp.Properties.SessionExpiryInterval = &o.expiry
	}
	if o.user != "" {
		cp.UsernameFlag, cp.Username = true, o.user
	}
	if o.pass != "" {
		cp.PasswordFlag, cp.Password = true, []byte(o.pass)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.pc.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		var rc byte
		if ca != nil {
			rc = ca.ReasonCode
		}
		return nil, rc, err
	}
	t.Cleanup(c.disconnect)
	return c, 0, nil
}

// mustConnect is connect failing the test on an error.
func mustConnect(t testing.TB, nc net.Conn, err error, id string, o dialOpts) *mqttClient {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: dial: %v", id, err)
	}
	c, rc, err := connect(t, nc, id, o)
	if err != nil {
		t.Fatalf("%s: connect: %v (reason %#x)", id, err, rc)
	}
	return c
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

func (c *mqttClient) disconnect() {
	select {
	case <-c.pc.Done():
		_ = c.acks.Close()
		return
	default:
	}
	// After the PUBACKs of what the test saw (paho sends them after the
	// handler returns).
	c.acks.Flush(c.pc.Done(), 5*time.Second)
	_ = c.pc.Disconnect(&paho.Disconnect{})
	select {
	case <-c.pc.Done():
		_ = c.acks.Close()
	case <-time.After(5 * time.Second):
	}
}

func (c *mqttClient) subscribe(filter string) {
	c.t.Helper()
	if rc := c.subscribeReason(filter); rc >= 0x80 {
		c.t.Fatalf("%s: subscribe %s: reason %#x", c.id, filter, rc)
	}
}

// subscribeReason subscribes at QoS 1 and returns the SUBACK's reason.
func (c *mqttClient) subscribeReason(filter string) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := c.pc.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil && (sa == nil || len(sa.Reasons) == 0) {
		c.t.Fatalf("%s: subscribe %s: %v", c.id, filter, err)
	}
	return sa.Reasons[0]
}

func (c *mqttClient) publish(topic, payload string, retain bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, err := c.pc.Publish(ctx, &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: retain})
	if err != nil {
		c.t.Fatalf("%s: publish %s: %v", c.id, topic, err)
	}
	if pr != nil && pr.ReasonCode >= 0x80 {
		c.t.Fatalf("%s: publish %s: reason %#x", c.id, topic, pr.ReasonCode)
	}
}

func (c *mqttClient) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.got))
	for i, p := range c.got {
		out[i] = p.Topic + "=" + string(p.Payload)
	}
	return out
}

// expect waits until the client got want (topic=payload, in any order)
// and then quiet more, and fails on anything else.
func (c *mqttClient) expect(want []string, quiet time.Duration) {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for len(c.received()) < len(want) {
		select {
		case <-c.more:
		case <-deadline:
			c.t.Fatalf("%s: %s", c.id, mqtttest.Diff(mqtttest.Sorted(c.received()), mqtttest.Sorted(want)))
		}
	}
	time.Sleep(quiet)
	if got := c.received(); !equalSorted(got, want) {
		c.t.Fatalf("%s: %s", c.id, mqtttest.Diff(mqtttest.Sorted(got), mqtttest.Sorted(want)))
	}
}

func equalSorted(a, b []string) bool {
	a, b = mqtttest.Sorted(a), mqtttest.Sorted(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// bcryptHash hashes pw at bcrypt's lowest cost (the tests' passwords
// need no strength; the broker takes any cost).
func bcryptHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wsConn is MQTT over a WebSocket connection (binary messages) as a
// net.Conn.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
}

func dialWS(url string, tc *tls.Config) (net.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second, TLSClientConfig: tc}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	if ws.Subprotocol() != "mqtt" {
		ws.Close()
		return nil, errors.New("websocket: the broker did not take subprotocol mqtt")
	}
	return &wsConn{Conn: ws.UnderlyingConn(), ws: ws}, nil
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("websocket: a message that is not binary")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

// freePort returns a loopback address with a port free a moment ago (for
// -ws, which needs a port).
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// pki is a CA and the certificates it signed, written as PEM files.
type pki struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	// CAFile is the CA certificate's file.
	CAFile string
}

func newPKI(t testing.TB, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), ca: ca, key: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.CAFile = writeFile(t, p.dir, name+"-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return p
}

// issue makes a certificate for 127.0.0.1 (server) or a client, and
// returns it loaded and as files.
func (p *pki) issue(t testing.TB, name string, server bool) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, writeFile(t, p.dir, name+".pem", string(certPEM)), writeFile(t, p.dir, name+"-key.pem", string(keyPEM))
}
