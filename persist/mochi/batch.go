package mochi

import (
	"net"
	"sync"
	"time"
)

// batchConn is a client's network connection (mochi's Client.Net.Conn)
// whose writes a delivery can hold and then send together: while held,
// every write (the delivery's PUBLISHes, encoded by mochi's WritePacket,
// and whatever mochi writes to the client meanwhile) is appended to a
// buffer, in order, and flush sends the buffer in one write. Unheld, writes
// go straight through.
type batchConn struct {
	net.Conn

	mu     sync.Mutex
	held   bool
	buf    []byte
	closed bool

	wmu sync.Mutex // held while writing to Conn, so that writes keep their order
}

// Sizes of batchConn's buffer.
const (
	// batchFlush is how many held bytes are written at once, before the
	// delivery's batch ends.
	batchFlush = 64 << 10
	// batchKeep is the largest buffer kept for the next batch.
	batchKeep = 256 << 10
	// closeFlush bounds the write of held bytes when the connection is
	// closed during a batch.
	closeFlush = time.Second
)

// wrapConn gives cl's connection a batchConn, or returns nil when it has
// no network connection. It is called before any other goroutine writes
// to the client (OnSessionEstablish, before mochi adds the client).
func wrapConn(nc *net.Conn) *batchConn {
	if *nc == nil {
		return nil
	}
	if b, ok := (*nc).(*batchConn); ok {
		return b
	}
	b := &batchConn{Conn: *nc}
	*nc = b
	return b
}

// NetConn returns the connection the listener accepted (a *net.TCPConn, a
// *tls.Conn, …), for hooks that need its type.
func (b *batchConn) NetConn() net.Conn { return b.Conn }

// hold starts holding writes.
func (b *batchConn) hold() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.held = !b.closed
	b.mu.Unlock()
}

// flush stops holding writes and writes what was held.
func (b *batchConn) flush() error {
	if b == nil {
		return nil
	}
	return b.writeHeld(true)
}

// writeHeld writes the held bytes, and stops holding when release is set.
// No one waits for wmu holding mu, so that Close never waits for a write
// that does not end.
func (b *batchConn) writeHeld(release bool) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	if release {
		b.held = false
	}
	data := b.buf
	b.buf = nil
	b.mu.Unlock()
	if len(data) == 0 {
		return nil
	}
	_, err := b.Conn.Write(data)
	if cap(data) <= batchKeep {
		b.mu.Lock()
		if b.buf == nil {
			b.buf = data[:0]
		}
		b.mu.Unlock()
	}
	return err
}

// Write writes p, or appends it to the held bytes; once those reach
// batchFlush it writes them. Writes to a client come one at a time (mochi
// writes under the client's lock), so a write that finds nothing held
// goes after the held bytes a flush is writing.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if !b.held {
		b.mu.Unlock()
		b.wmu.Lock()
		defer b.wmu.Unlock()
		return b.Conn.Write(p)
	}
	b.buf = append(b.buf, p...)
	full := len(b.buf) >= batchFlush
	b.mu.Unlock()
	if full {
		if err := b.writeHeld(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Close writes what is held (mochi's last packets, a DISCONNECT, may be
// among them), within closeFlush, and closes the connection.
func (b *batchConn) Close() error {
	b.mu.Lock()
	b.held, b.closed = false, true
	data := b.buf
	b.buf = nil
	b.mu.Unlock()
	if len(data) > 0 {
		// A write under way that does not end soon (the client reads
		// nothing) is ended by the deadline, as Close would end it.
		_ = b.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
		b.wmu.Lock()
		_, _ = b.Conn.Write(data)
		b.wmu.Unlock()
	}
	return b.Conn.Close()
}
