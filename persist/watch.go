package persist

import (
	"context"
	"time"
)

// Notice tells a watching node that messages were stored for a topic, or
// that a client connected on some node.
type Notice struct {
	// Topic is the topic name of the stored messages ("" in a client's
	// notice).
	Topic string
	// Node is the broker node that published the messages (Message.Node),
	// so that a node can leave out the messages it delivered itself, or
	// the node the client connected to; "" when the store does not know.
	Node string
	// Client, when set, says that this client connected on Node (a
	// Connected with Online true): a node that still has a connection of
	// that client closes it, so that one client ID has one connection
	// cluster-wide [MQTT-3.1.4-2]. Every watch hears every client's
	// notice, whatever its filters.
	Client string
	// At is when the client connected (Client.OnlineAt) in a client's
	// notice: a node leaves a connection of the client that is newer than
	// that alone (the client came back to it).
	At time.Time
	// Offline marks a client's notice of a disconnect from Node (a
	// Connected with Online false), sent whether or not the store applied
	// it: the node has recorded the client's acks, and the node the client
	// moved to may now read its messages without getting acknowledged ones
	// again.
	Offline bool
}

// Watcher is implemented by stores that tell the broker nodes sharing
// their database, live, that messages were stored — through this store
// value or another one on the same database, on any node — so that a
// client connected to node A gets a message published on node B without
// reconnecting. Each store says in its package doc how it notifies
// (Redis pub/sub, PostgreSQL LISTEN/NOTIFY, or polling where the
// database has no notification) and what it costs.
//
// A broker adapter watches the filters its connected clients subscribe
// to and fetches from the store when it hears of a matching topic. If a
// store does not implement Watcher, messages published on another node
// reach a client at its next fetch: when it reconnects, or when a message
// published on its own node makes the adapter fetch that topic.
type Watcher interface {
	// Watch starts a watch: fn is called with a Notice soon after a
	// Publish that stored messages for a topic matching one of the
	// watch's filters has returned (the messages are readable then), and
	// after every Connected (a client's notice, with Offline for a
	// disconnect).
	// Notices are hints to fetch, not messages: one may stand for several
	// messages, may come twice, and may come for messages already read.
	// fn must not block for long. The watch ends when ctx ends or Close
	// is called; a watch whose connection to the database broke keeps
	// trying to reconnect, and calls fn with an empty Topic after it
	// reconnected (anything may have been missed: fetch everything).
	Watch(ctx context.Context, fn func(Notice)) (Watch, error)
}

// Watch is one node's interest in stored messages, by filter. Filters
// are counted: a filter added twice is watched until it is removed
// twice. A shared filter ($share/<group>/<filter>) is watched as its
// inner filter. Only the nodes whose watches match a topic hear of it,
// where the database allows (see each store's doc).
type Watch interface {
	// Add starts watching filters. Invalid filters are an error matching
	// ErrInvalid, and none of filters is added then.
	Add(ctx context.Context, filters ...string) error
	// Remove stops watching filters (one count each); removing a filter
	// that is not watched is not an error.
	Remove(ctx context.Context, filters ...string) error
	// Close ends the watch.
	Close() error
}
