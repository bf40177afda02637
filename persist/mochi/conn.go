package mochi

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// entry is one delivery of a stored message to a client.
type entry struct {
	id    string
	topic string
	mode  persist.Mode
	// stored is set when the store delivered it: its ID is remembered
	// for a while after the ack, in case its live copy comes late.
	stored bool
	// groups are the shared groups the client got it for, from the
	// store (Hook.groups): its ack is the groups' too. notOwn: it was
	// only the groups' (no subscription of the client's own matched).
	groups []string
	notOwn bool
	// dup: sent with DUP set, as a resend of an earlier connection's.
	dup bool
}

// conn is the delivery of persisted messages to one connection of a
// client. Its run goroutine is the only sender of persisted messages to the
// client: it replays the store (paged, in ID order) until nothing is left,
// then sends live messages from memory, falling back to the store whenever
// memory overflows, a subscription is added, queue messages arrive or the
// store tells of messages stored on another node. It records the client's
// acks in the store, each for its message alone.
type conn struct {
	h   *Hook
	cl  *mqtt.Client
	id  string
	out *batchConn // the client's connection; nil for one without (batch.go)

	ctx    context.Context
	cancel context.CancelFunc
	// acks is the context of the calls that record the client's acks: a
	// connection that ends still records them (see stop), until the Hook
	// closes or ackGrace after the end.
	acks      context.Context
	endAcks   context.CancelFunc
	stopOnce  sync.Once
	started   chan struct{}
	done      chan struct{}
	startOnce sync.Once
	wake      chan struct{}

	mu     sync.Mutex
	mem    []*item
	events []event
	kicks  uint64
	// spills counts the kicks that were spills (see push); while a fetch
	// runs, spilled holds the IDs spilled since it began (nil otherwise;
	// over maxSpilledIDs, spillLost is set instead).
	spills    uint64
	spillsAt  uint64 // spills when the fetch began
	spilled   map[string]struct{}
	spillLost bool
	pushed    uint64          // live messages pushed (see item.seq)
	covers    uint64          // pushed when the latest fetch began: it covers those before
	grace     bool            // memory may hold fetchGrace × Buffer (see push)
	unsure    map[string]bool // filters subscribed to but not stored yet: not fetched

	// Owned by run.
	window   int
	db       bool // replaying the store; else sending from memory
	caughtUp bool // the backlog is all the store holds: live after it
	// page is how many messages the next fetch asks for per filter on top
	// of those in flight: Options.Page, doubled after each full page (see
	// grow) while the client is behind.
	page       int
	seenKicks  uint64
	pending    map[uint16]*entry // sent, waiting for PUBACK/PUBREC
	batched    []uint16          // packet IDs sent since batch began
	ready      []*entry          // acknowledged, to record
	readySince time.Time         // when ready became non-empty
	unsent     []*entry          // recording failed, to try again
	lastErr    error             // why unsent failed last, once the connection ended
	known      map[string]int64  // ID → 0 while in flight, else when its ack was recorded
	backlog    []*persist.Message
	fetchedAt  time.Time // of the backlog
	// claimed holds, by message ID, the shared groups a fetch claimed the
	// message for (until it is delivered).
	claimed map[string][]string
	// endsSession: the client's session ends with this connection (set
	// when it disconnects; its group claims are then given back).
	endsSession atomic.Bool
	subs        map[string]packets.Subscription
	retryAt     time.Time
	backoff     time.Duration
	ackRetryAt  time.Time
	pruned      time.Time
	timer       *time.Timer      // sleep's
	pid         uint32           // the last packet ID given to a delivery
	bad         map[string]error // filters the store rejects
	watched     map[string]bool  // filters in the Hook's watch for this connection
	since       time.Time        // when the connection was made
	// mark is an ID made as the first read of the store began (after the
	// handoff): see sendMem.
	mark    string
	handoff handoff // from the client's connection on another node

	// Unacknowledged on the previous connection: message ID → packet ID
	// (resend.go).
	resends map[string]uint16
	// mochi's topic index of subs, to merge them as mochi does (match.go).
	index   *mqtt.TopicsIndex
	indexOf map[string]packets.Subscription

	// Queue messages it may not take, whose claims it gives back (acl.go).
	refused   map[string]*refusal
	nrefused  int       // of those, claimed since their last release
	releaseAt time.Time // after a failed release
}

// permanent reports whether trying a store call again cannot help.
func permanent(err error) bool {
	return errors.Is(err, persist.ErrInvalid) || errors.Is(err, persist.ErrUnsupported)
}

func newConn(h *Hook, cl *mqtt.Client) *conn {
	c := &conn{
		h: h, cl: cl, id: cl.ID,
		started: make(chan struct{}),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		pending: map[uint16]*entry{},
		known:   map[string]int64{},
		bad:     map[string]error{},
		watched: map[string]bool{},
		since:   time.Now(),
		out:     wrapConn(&cl.Net.Conn),
	}
	c.ctx, c.cancel = context.WithCancel(h.base)
	c.acks, c.endAcks = context.WithCancel(h.base)
	return c
}

func (c *conn) start() { c.startOnce.Do(func() { close(c.started) }) }

// stop ends the delivery. The acks the client sent are still recorded:
// those in a call to the store go on, and the last ones are tried again
// while the store fails, for up to ackGrace (the callers wait longer for
// the delivery to end, so that a disconnect written after it is written
// after the acks).
func (c *conn) stop() {
	c.stopOnce.Do(func() {
		c.cancel()
		time.AfterFunc(ackGrace(c.h.opts.Timeout), c.endAcks)
	})
}

// ackGrace is how long after its end a connection tries to record the
// client's last acks: most of timeout, the time a disconnect waits for
// the delivery to end (the rest is for the delivery's other last calls).
func ackGrace(timeout time.Duration) time.Duration { return timeout * 4 / 5 }

// wait waits up to d for the delivery to end.
func (c *conn) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.h.log.Warn("mqttpersist: delivery did not end in time", "client", c.id, "timeout", d)
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// kick makes the delivery fetch from the store again.
func (c *conn) kick() {
	c.mu.Lock()
	c.kicks++
	c.mu.Unlock()
	c.signal()
}

func (c *conn) kickCount() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kicks
}

// storing marks the filters of a SUBSCRIBE as being stored (on) or
// stored (off, which also kicks the delivery to fetch for them).
func (c *conn) storing(subs []packets.Subscription, on bool) {
	c.mu.Lock()
	if c.unsure == nil {
		c.unsure = map[string]bool{}
	}
	for _, s := range subs {
		if on {
			c.unsure[normFilter(s.Filter)] = true
		} else {
			delete(c.unsure, normFilter(s.Filter))
		}
	}
	c.mu.Unlock()
	if !on {
		c.kick()
	}
}

func (c *conn) run() {
	defer close(c.done)
	defer c.finish()
	select {
	case <-c.started:
	case <-c.ctx.Done():
		return
	}
	c.window = c.h.opts.Window
	if c.cl.Properties.ProtocolVersion == 5 {
		if rm := int(c.cl.Properties.Props.ReceiveMaximum); rm > 0 {
			c.window = min(c.window, rm)
		}
	}
	if mi := int(c.h.server.Options.Capabilities.MaximumInflight) / 2; mi > 0 {
		c.window = min(c.window, mi)
	}
	c.awaitHandoff(c.ctx.Done())
	c.mark = persist.NewID()
	c.replay()
	c.page = c.h.opts.Page
	c.seenKicks = c.kickCount()
	for c.ctx.Err() == nil {
		c.intake()
		c.record(false, false)
		if c.ctx.Err() != nil {
			return
		}
		stepped := c.step()
		if !c.release(false) && !stepped {
			c.sleep()
		}
	}
}

// step sends what it can; it returns false when it has to wait.
func (c *conn) step() bool {
	if !c.db {
		return c.sendMem()
	}
	if len(c.backlog) == 0 {
		if time.Now().Before(c.retryAt) {
			return false
		}
		c.record(true, false) // the store has the acks before the fetch
		k := c.watchSpills()
		msgs, full, err := c.fetch()
		// Caught up: the store gave everything it holds for the client
		// and nothing kicked the delivery meanwhile but spills of messages
		// the fetch returned, so what is published from now on is in
		// memory: after this backlog, live.
		c.caughtUp = err == nil && !full && c.settled(k, msgs)
		c.grow(msgs, full && err == nil)
		c.backlog = msgs
		c.fetchedAt = time.Now()
		if err != nil {
			c.backoff = min(max(2*c.backoff, 100*time.Millisecond), 10*time.Second)
			c.retryAt = time.Now().Add(c.backoff)
		} else {
			c.backoff = 0
		}
		if len(msgs) == 0 {
			if err != nil {
				return false
			}
			if c.caughtUp {
				c.db = false // the store holds nothing more: live from now on
			}
			return true
		}
	}
	sent := c.sendBacklog()
	if len(c.backlog) == 0 && c.caughtUp {
		// Not another fetch, which under a steady stream would always find
		// the messages just published (they are in memory too) and never
		// let the delivery go live again.
		c.db = false
	}
	return sent
}

// replay turns the delivery to the store.
func (c *conn) replay() {
	c.db, c.caughtUp = true, false
	c.mu.Lock()
	c.grace = true
	c.mu.Unlock()
}

// maxSpilledIDs bounds the IDs a conn notes while a fetch runs.
const maxSpilledIDs = 16384

// watchSpills starts noting the IDs spilled from memory (see push) and
// returns the kick count before the fetch.
func (c *conn) watchSpills() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spilled, c.spillLost, c.spillsAt = map[string]struct{}{}, false, c.spills
	c.covers = c.pushed
	return c.kicks
}

// settled stops noting spilled IDs and reports whether the fetch that
// started at kick count k and returned msgs saw everything: no kick since
// k, or only spills of messages that msgs holds or that were delivered.
// A steady stream to a client that is behind fills its memory, and so
// spills, during most fetches; were every spill to force another fetch, a
// client whose fetch takes longer than the stream needs to fill Buffer
// would never go live again. It then marks those kicks seen.
func (c *conn) settled(k uint64, msgs []*persist.Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	spilled, lost := c.spilled, c.spillLost
	c.spilled, c.spillLost = nil, false
	if c.kicks == k {
		return true
	}
	// Every kick since k must be a spill: spills counts them, and a kick
	// of another kind (a subscription, a queue message, a notice) needs a
	// fetch of its own.
	if lost || c.kicks-k != c.spills-c.spillsAt {
		return false
	}
	got := make(map[string]struct{}, len(msgs))
	for _, m := range msgs {
		got[m.ID] = struct{}{}
	}
	for id := range spilled {
		_, fetched := got[id]
		_, sent := c.known[id]
		if !fetched && !sent {
			return false
		}
	}
	c.seenKicks = c.kicks
	return true
}

// maxPageGrowth and growBytes bound grow: a page is at most
// maxPageGrowth × Options.Page messages, and grows only while the last
// one held under growBytes of payload.
const (
	maxPageGrowth = 16
	growBytes     = 8 << 20
)

// grow sets the size of the next page: doubled after a full one (the
// store holds more), back to Options.Page once caught up. A client that
// fell behind under a steady stream replays from the store, and every
// fetch waits for what is being written (an async outbox first) and then
// for the database: at a fixed page that costs as much per page as the
// stream adds meanwhile, and the client might never catch up and go live
// again. Bigger pages while it stays behind make each of those waits
// count for more messages.
func (c *conn) grow(msgs []*persist.Message, full bool) {
	if !full {
		if c.caughtUp {
			c.page = c.h.opts.Page
		}
		return
	}
	n := 0
	for _, m := range msgs {
		n += len(m.Payload)
	}
	if n < growBytes {
		c.page = min(2*c.page, maxPageGrowth*c.h.opts.Page)
	}
}

func (c *conn) sleep() {
	var tc <-chan time.Time
	d := time.Duration(-1) // until the earliest of these; none: -1
	until := func(t time.Time) {
		if u := time.Until(t); d < 0 || u < d {
			d = u
		}
	}
	if c.db && len(c.backlog) == 0 && !c.retryAt.IsZero() {
		until(c.retryAt)
	}
	if len(c.unsent) > 0 {
		until(c.ackRetryAt)
	}
	if len(c.ready) > 0 {
		until(c.readySince.Add(ackDelay))
	}
	if c.nrefused > 0 && time.Now().Before(c.releaseAt) {
		until(c.releaseAt) // a release that failed is tried again then (acl.go)
	}
	if d >= 0 {
		if c.timer == nil {
			c.timer = time.NewTimer(max(d, time.Millisecond))
		} else {
			c.timer.Reset(max(d, time.Millisecond))
		}
		defer c.timer.Stop()
		tc = c.timer.C
	}
	select {
	case <-c.wake:
	case <-c.ctx.Done():
	case <-tc:
	}
}

// finish records the last acks and takes the unacknowledged deliveries out
// of mochi's session, so that the next connection gets them from the store,
// in order, rather than as mochi's resends.
func (c *conn) finish() {
	defer c.endAcks()
	c.intake()
	c.recordLast()
	c.release(true)
	c.releaseGroups()
	c.unwatch()
	inf := c.cl.State.Inflight
	for pid, e := range c.pending {
		pk, ok := inf.Get(pid)
		if !ok || pk.FixedHeader.Type != packets.Publish {
			continue
		}
		if t, ok := parseTag(pk.Connect.ClientIdentifier); ok && t.id == e.id && inf.Delete(pid) {
			atomic.AddInt64(&c.h.server.Info.Inflight, -1)
		}
	}
	c.keepResends()
}
