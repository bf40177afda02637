package mochi

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// countingConn counts the writes that reach a real connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// Held writes reach the connection in one write, in order with the writes
// of others meanwhile; unheld ones go straight through.
func TestBatchConnHoldsAndFlushes(t *testing.T) {
	client, server := tcpPair(t)
	cc := &countingConn{Conn: server}
	var nc net.Conn = cc
	b := wrapConn(&nc)
	if nc != net.Conn(b) || b.NetConn() != net.Conn(cc) || wrapConn(&nc) != b {
		t.Fatal("wrapConn did not wrap once")
	}
	var want bytes.Buffer
	write := func(s string) {
		t.Helper()
		if n, err := nc.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q = %d, %v", s, n, err)
		}
		want.WriteString(s)
	}
	write("a")
	b.hold()
	for i := range 100 {
		write(fmt.Sprintf("<%d>", i))
	}
	var wg sync.WaitGroup
	wg.Go(func() { write("[other goroutine]") }) // mochi writing meanwhile
	wg.Wait()
	if n := cc.writes.Load(); n != 1 {
		t.Fatalf("%d writes reached the connection while held, want 1", n)
	}
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load(); n != 2 {
		t.Fatalf("%d writes after the flush, want 2", n)
	}
	write("z")
	if err := b.flush(); err != nil || cc.writes.Load() != 3 {
		t.Fatalf("a flush with nothing held: %v, %d writes", err, cc.writes.Load())
	}
	// A held batch larger than batchFlush goes out as it grows.
	b.hold()
	big := bytes.Repeat([]byte{'x'}, 1000)
	for range 3 * batchFlush / len(big) {
		write(string(big))
	}
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	if n := cc.writes.Load() - 3; n < 3 || n > 4 {
		t.Errorf("%d writes for %d held bytes, want 3 or 4", n, 3*batchFlush)
	}
	nc.Close()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the client read %d bytes, want %d in the order written", len(got), want.Len())
	}
}

// Close writes what is held first (a DISCONNECT mochi wrote during a
// batch), and does not wait long for a client that reads nothing.
func TestBatchConnClose(t *testing.T) {
	client, server := tcpPair(t)
	var nc net.Conn = server
	b := wrapConn(&nc)
	b.hold()
	nc.Write([]byte("last packet"))
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(client)
	if string(got) != "last packet" {
		t.Fatalf("the client read %q, want the held bytes", got)
	}
	if _, err := nc.Write([]byte("x")); err == nil {
		t.Error("a write after Close succeeded")
	}

	// The client reads nothing: a write blocks once the socket buffers are
	// full; Close ends it (nothing held), or gives the held bytes
	// closeFlush and ends it then.
	for _, held := range []bool{false, true} {
		_, server := tcpPair(t)
		var nc net.Conn = server
		b := wrapConn(&nc)
		stuck := make(chan struct{})
		go func() {
			defer close(stuck)
			chunk := make([]byte, 1<<20)
			for {
				if _, err := nc.Write(chunk); err != nil {
					return
				}
			}
		}()
		time.Sleep(100 * time.Millisecond) // the writer is blocked by now
		if held {
			b.hold()
			go nc.Write([]byte("held")) // appended, not blocked
			time.Sleep(10 * time.Millisecond)
		}
		done := make(chan struct{})
		go func() { nc.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * closeFlush):
			t.Fatalf("held %v: Close did not return", held)
		}
		<-stuck
	}
}
