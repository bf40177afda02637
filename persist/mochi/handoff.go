package mochi

import (
	"sync"
	"time"
)

// handoffWait bounds how long a connection waits for the node the client
// was connected to before to record the client's acks (see handoff).
const handoffWait = 3 * time.Second

// handoff is what a connection knows of the client's previous connection
// on another node: the node must record the client's acks before this
// connection reads the store, or messages the client acknowledged there
// would come again.
type handoff struct {
	mu       sync.Mutex
	from     string          // the node the client was online on when it connected here
	released map[string]bool // nodes whose disconnect of the client was heard
	done     chan struct{}   // closed when from released the client
}

// expect records that the client was online on node when it connected
// here; the connection's first read of the store waits for that node.
func (c *conn) expect(node string) {
	hd := &c.handoff
	hd.mu.Lock()
	defer hd.mu.Unlock()
	hd.from = node
	hd.done = make(chan struct{})
	if hd.released[node] {
		close(hd.done)
	}
}

// releasedBy records that node disconnected the client (a client's notice
// with Offline): it has recorded the client's acks.
func (c *conn) releasedBy(node string) {
	hd := &c.handoff
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.released == nil {
		hd.released = map[string]bool{}
	}
	if hd.released[node] {
		return
	}
	hd.released[node] = true
	if hd.from == node && hd.done != nil {
		close(hd.done)
	}
}

// awaitHandoff waits, before the first read of the store, until the node
// the client came from has recorded its acks, at most handoffWait (a node
// that crashed never says so: its unrecorded acks' messages come again).
func (c *conn) awaitHandoff() {
	hd := &c.handoff
	hd.mu.Lock()
	done, from := hd.done, hd.from
	hd.mu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(min(handoffWait, c.h.opts.Timeout))
	defer t.Stop()
	select {
	case <-done:
	case <-c.ctx.Done():
	case <-t.C:
		c.h.log.Debug("mqttpersist: the client's previous node did not say it recorded the client's acks; reading the store", "client", c.id, "node", from)
	}
}
