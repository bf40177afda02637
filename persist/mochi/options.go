package mochi

import (
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Defaults of Options.
const (
	DefaultTimeout = 5 * time.Second
	DefaultWindow  = 256
	DefaultBuffer  = 1024
	DefaultPage    = 256
)

// Options configure a Hook. The zero value (or nil) gives the defaults.
type Options struct {
	// Node names this broker node in client state and stored messages;
	// "" means the host name. Nodes that share a database need distinct
	// names: a node leaves out the store's notices of its own messages
	// (it delivered them live), and two nodes of one name would not hear
	// each other's.
	Node string
	// Timeout bounds every store call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives store failures (with client, topic and operation);
	// nil means the logger mochi gives the hook.
	Logger *slog.Logger
	// Fetch holds the Since and Lease of every FetchOffline call (the
	// seeds' offline_opts time_range and the queue lease); its Mode and
	// Limit are ignored: the Router's rules decide the mode and the Hook
	// pages by Window.
	Fetch persist.Fetch
	// Window is the most persisted messages in flight to one client
	// (sent, not yet acknowledged); it is further capped by the client's
	// Receive Maximum and half of the server's MaximumInflight. 0 means
	// DefaultWindow.
	Window int
	// Page is how many messages one FetchOffline call asks for (on top of
	// those in flight); a client replays a page through its Window. While a
	// client is behind — each fetch came back full — the page doubles, up
	// to 16 × Page while a page's payloads stay under 8 MiB, so that the
	// wait of every fetch (an async outbox draining, the database) counts
	// for more messages and a client behind a steady stream catches up;
	// it is Page again once the client has caught up. Queue messages are
	// claimed a page at a time, a shared group's always Page at a time (a
	// member's claim keeps them from the others). 0 means DefaultPage.
	Page int
	// Buffer is the most live messages held in memory for one client that
	// cannot take them yet; beyond it they are dropped from memory and
	// delivered from the store instead. While the client's delivery
	// replays the store, and until memory has drained under Buffer after
	// it, memory holds up to 4 × Buffer of the messages published since
	// its latest fetch began (those before it the fetch returns): they are
	// what the delivery sends live after the replay, and a stream that
	// fills Buffer within one fetch would else keep it on the store. 0
	// means DefaultBuffer.
	Buffer int
	// QoS0 stores QoS 0 publishes too when the store is not a Router (a
	// Router decides by its rules' QoS0).
	QoS0 bool
	// NoRetainSync turns off refreshing the broker's retained messages
	// from the store for every new subscription (which makes retained
	// messages set on other nodes visible); StoredRetainedMessages still
	// loads them at start.
	NoRetainSync bool
	// Fallback delivers a QoS 1 or 2 message the store failed to take
	// from mochi's memory and acknowledges it, as mochi alone would (a
	// restart then loses it). By default such a message is refused: an
	// MQTT 5 publisher gets a PUBACK with reason Unspecified error (QoS 1)
	// and a 3.1.1 publisher or a QoS 2 one gets no acknowledgement, so it
	// sends the message again. Either way the failure is logged and
	// counted. A message the store can never take (ErrInvalid, such as a
	// topic longer than it allows) always falls back, as do QoS 0 ones.
	Fallback bool
	// ACL, when set, is asked whether a client may read a topic before a
	// persisted message is delivered to it (live or from the store). Pass
	// the OnACLCheck method of the server's auth hook to keep per-topic read
	// rules; nil allows every delivery to a subscription the broker
	// accepted. A queue message it denies goes to another consumer (see
	// Caveats in the package doc).
	ACL func(cl *mqtt.Client, topic string, write bool) bool
}
