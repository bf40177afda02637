package sqlstore

import "sync"

// spans remembers, per topic, the counter positions this Store's own
// Publish calls took, with the node that published them, for the polling
// watch: when a topic's counter moved by several batches between two polls,
// the counter row names only the last batch's node, and the watch's notice
// would name none — which makes every subscriber of the topic on the
// node read the store, although its own messages were delivered live.
// When this Store's batches of one node hold every position of the move,
// no other node's message is among them (a position is taken once, in the
// transaction that commits the message), and the notice names that node.
type spans struct {
	mu sync.Mutex
	by map[string][]span // per topic, ascending, runs merged
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
)

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
// topic, or "" when no one node's recorded batches did.
func (sp *spans) node(topic string, from, to int64) string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
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
