package sqlstore

import (
	"sync"
	"time"
)

// spans remembers, per topic, the counter positions this Store's own
// Publish calls took, with the node that published them, for the polling
// watch: when a topic's counter moved by several batches between two polls,
// the counter row names only the last batch's node, and the watch's notice
// would name none — which makes every subscriber of the topic on the
// node read the store, although its own messages were delivered live.
// When this Store's batches of one node hold every position of the move,
// no other node's message is among them (a position is taken once, in the
// transaction that commits the message), and the notice names that node.
//
// A Publish records its positions after its commit, so a poll may read a
// counter before the Publish that moved it said so: a poll that finds a
// move not covered waits (briefly) for the Publish calls that began before
// its read to end (begin, see node).
type spans struct {
	mu       sync.Mutex
	by       map[string][]span // per topic, ascending, runs merged
	began    uint64            // Publish calls begun
	inflight map[uint64]bool   // those not ended, by the order they began
	ended    chan struct{}     // closed (and replaced) when one ends
}

// span is the positions from+1 .. to, published by node.
type span struct {
	from, to int64
	node     string
}

// Bounds of what spans keeps: the latest maxSpans runs per topic, and up
// to maxSpanTopics topics (then it starts over). What it forgot makes a
// notice name no node, as without it.
const (
	maxSpans      = 32
	maxSpanTopics = 4096
	// spanWait bounds a poll's waits for the Publish calls in flight.
	spanWait = 100 * time.Millisecond
)

// begin notes a Publish call that may move counters; the function it
// returns ends it, after add recorded what it took.
func (sp *spans) begin() func() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.began++
	g := sp.began
	if sp.inflight == nil {
		sp.inflight = map[uint64]bool{}
	}
	sp.inflight[g] = true
	return func() {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		delete(sp.inflight, g)
		if sp.ended != nil {
			close(sp.ended)
			sp.ended = nil
		}
	}
}

// mark returns a mark of the Publish calls begun so far, for node: take it
// after reading the counters.
func (sp *spans) mark() uint64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.began
}

// add records that node's batch moved topic's counter by n, to to.
func (sp *spans) add(topic, node string, to, n int64) {
	if node == "" || n <= 0 {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.by == nil || len(sp.by) >= maxSpanTopics {
		sp.by = map[string][]span{}
	}
	l := sp.by[topic]
	from := to - n
	if k := len(l); k > 0 && l[k-1].to == from && l[k-1].node == node {
		l[k-1].to = to
		return
	}
	// Commits may end out of the order of their positions: keep the
	// runs ascending.
	i := len(l)
	for i > 0 && l[i-1].from >= to {
		i--
	}
	l = append(l, span{})
	copy(l[i+1:], l[i:])
	l[i] = span{from: from, to: to, node: node}
	if len(l) > maxSpans {
		l = l[len(l)-maxSpans:]
	}
	sp.by[topic] = l
}

// node returns the node whose batches took every position from+1 .. to of
// topic, or "" when no one node's batches did. When they do not (yet), it
// waits, until deadline at most, for the Publish calls begun before mark
// to end: one of them may have committed a move and not recorded it yet.
func (sp *spans) node(topic string, from, to int64, mark uint64, deadline time.Time) string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for {
		if n := sp.cover(topic, from, to); n != "" || !sp.pending(mark) {
			return n
		}
		if sp.ended == nil {
			sp.ended = make(chan struct{})
		}
		ch := sp.ended
		d := time.Until(deadline)
		if d <= 0 {
			return ""
		}
		sp.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
		sp.mu.Lock()
	}
}

// pending reports whether a Publish call begun at or before mark has not
// ended; sp.mu is held.
func (sp *spans) pending(mark uint64) bool {
	for g := range sp.inflight {
		if g <= mark {
			return true
		}
	}
	return false
}

// cover is node's answer from what is recorded; sp.mu is held.
func (sp *spans) cover(topic string, from, to int64) string {
	node, at := "", from
	for _, s := range sp.by[topic] {
		if s.to <= at {
			continue
		}
		if s.from > at || node != "" && s.node != node {
			return ""
		}
		node, at = s.node, s.to
		if at >= to {
			return node
		}
	}
	return ""
}
