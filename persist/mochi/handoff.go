package mochi

import (
	"sync"
	"time"
)

// handoffWait bounds how long a connection waits for the node the client
// was connected to before to record the client's acks (see handoff).
const handoffWait = 3 * time.Second

// handoff is what a connection knows of the client's previous connections
// on other nodes: each such node must record the client's acks before
// this connection reads the store, or messages the client acknowledged
// there would come again.
//
// The wait is handed on. A connection that ends while it still waits
// waits the rest before its disconnect is written (its disconnect's
// notice tells the next node that the acks are recorded), and a new
// connection of the client on this node takes over what an ending one
// still waits for; so a client that moves on faster than a node records
// its acks gets them from none of the nodes it comes to.
type handoff struct {
	mu       sync.Mutex
	waiting  map[string]bool // nodes whose disconnect of the client is awaited
	released map[string]bool // nodes whose disconnect of the client was heard
	deadline time.Time       // when the wait ends anyway
	done     chan struct{}   // closed when no node is awaited
	over     chan struct{}   // closed when a newer connection of the client here took the wait over
}

// expect records that the client was online on node when it connected
// here (at start); the connection's first read of the store waits for
// that node, at most until start plus wait.
func (c *conn) expect(node string, start time.Time, wait time.Duration) {
	hd := &c.handoff
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.released[node] {
		return
	}
	if len(hd.waiting) == 0 { // nothing awaited (done nil, or closed)
		hd.waiting = map[string]bool{}
		hd.done = make(chan struct{})
		hd.deadline = start.Add(wait)
	} else if d := start.Add(wait); d.After(hd.deadline) {
		hd.deadline = d
	}
	hd.waiting[node] = true
}

// expectAfresh is expect for the node that the client's stored state,
// read after c was registered, names as the one the client is online on:
// a release heard from that node before the read was not of that
// connection (its disconnect, had it come first, would show in the state),
// but of an older one there, so it is forgotten and the node awaited anew.
// A release forgotten wrongly costs at most the wait; one kept wrongly,
// messages acknowledged on that node would come again.
func (c *conn) expectAfresh(node string, start time.Time, wait time.Duration) {
	hd := &c.handoff
	hd.mu.Lock()
	delete(hd.released, node)
	hd.mu.Unlock()
	c.expect(node, start, wait)
}

// inherit makes c, a new connection of the client on this node, wait for
// what old, its connection before here, still waits for (c was
// registered first, so notices that arrive meanwhile reach both); old
// waits no more and, having ended, writes no disconnect: c writes its
// own.
func (c *conn) inherit(old *conn) {
	ho := &old.handoff
	ho.mu.Lock()
	var nodes []string
	for n := range ho.waiting {
		nodes = append(nodes, n)
	}
	deadline := ho.deadline
	if ho.over == nil {
		ho.over = make(chan struct{})
	}
	if !isClosed(ho.over) {
		close(ho.over)
	}
	ho.mu.Unlock()
	for _, n := range nodes {
		c.expect(n, deadline, 0)
	}
}

// superseded reports whether a newer connection of the client on this
// node took over from c (see inherit).
func (c *conn) superseded() bool {
	hd := &c.handoff
	hd.mu.Lock()
	defer hd.mu.Unlock()
	return hd.over != nil && isClosed(hd.over)
}

// isClosed reports whether ch is closed.
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
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
	hd.released[node] = true
	if !hd.waiting[node] {
		return
	}
	delete(hd.waiting, node)
	if len(hd.waiting) == 0 {
		close(hd.done)
	}
}

// awaitHandoff waits, before the first read of the store, until the nodes
// the client came from have recorded its acks, or until the deadline (a
// node that crashed never says so: its unrecorded acks' messages come
// again), or stop, or a newer connection took the wait over.
func (c *conn) awaitHandoff(stop <-chan struct{}) {
	hd := &c.handoff
	hd.mu.Lock()
	done, deadline := hd.done, hd.deadline
	if hd.over == nil {
		hd.over = make(chan struct{})
	}
	over := hd.over
	hd.mu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
	case <-stop:
	case <-over:
	case <-t.C:
		hd.mu.Lock()
		var nodes []string
		for n := range hd.waiting {
			nodes = append(nodes, n)
		}
		hd.mu.Unlock()
		c.h.log.Debug("mqttpersist: the client's previous node did not say it recorded the client's acks; reading the store", "client", c.id, "nodes", nodes)
	}
}
