package mochi_test

import (
	"net"
	"testing"
	"time"
)

// The Hook wraps a client's connection so that a batch of deliveries is
// one write; the listener's connection stays reachable through NetConn
// (see Caveats), and a backlog larger than the window arrives whole and in
// order through it.
func TestConnWrapped(t *testing.T) {
	r, _ := sqliteDB(t).open(t)
	b := startBroker(t, r, nil, nil)
	sub := dial(t, b.addr, "wrapped", connOpts{Expiry: 3600})
	sub.Subscribe("wrap/#", 1)
	sub.Disconnect()
	pub := dial(t, b.addr, "wrap-pub", connOpts{Clean: true})
	want := numbered("m", 600) // more than DefaultWindow: several batches
	for _, p := range want {
		pub.Publish("wrap/t", []byte(p), 1, false)
	}
	sub = dial(t, b.addr, "wrapped", connOpts{Expiry: 3600})
	got := payloads(sub.WaitFor(len(want), time.Minute, 0))
	if !equal(got, want) {
		t.Fatalf("replayed %s", diff(got, want))
	}
	cl, ok := b.server.Clients.Get("wrapped")
	if !ok {
		t.Fatal("no client")
	}
	nc, ok := cl.Net.Conn.(interface{ NetConn() net.Conn })
	if !ok {
		t.Fatalf("the client's connection is a %T, not the Hook's wrapper", cl.Net.Conn)
	}
	if _, ok := nc.NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn() is a %T, want the listener's *net.TCPConn", nc.NetConn())
	}
}
