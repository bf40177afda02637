package persist

import (
	"strconv"
	"time"
)

// Mode says how a stored message is kept for subscribers that are offline.
type Mode uint8

const (
	// Fanout (many-to-many, "pubsub" in the reference backends) stores a
	// message once; every subscriber keeps its own read position (a cursor
	// per client and topic). Acks advance the cursor; a message leaves only
	// by expiry.
	Fanout Mode = iota
	// Queue (one-to-one) stores a message once; it is handed to
	// exactly one consumer (an atomic claim with a lease) and deleted when
	// that consumer acks it.
	Queue
)

// String returns "fanout" or "queue".
func (m Mode) String() string {
	switch m {
	case Fanout:
		return "fanout"
	case Queue:
		return "queue"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "fanout" (also "pubsub") or "queue" (also "one-to-one").
func ParseMode(s string) (Mode, error) {
	switch s {
	case "fanout", "pubsub", "many-to-many":
		return Fanout, nil
	case "queue", "one-to-one":
		return Queue, nil
	}
	return 0, Errorf(ErrInvalid, "persist: unknown mode %q (want fanout or queue)", s)
}

// UserProperty is one MQTT 5 user property; order and duplicates are kept.
type UserProperty struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// Properties are the MQTT 5 publish properties that survive storage.
// Message expiry is Message.Expiry; topic aliases and subscription
// identifiers are per-connection and are not stored.
type Properties struct {
	// PayloadFormat is the Payload Format Indicator (0 bytes, 1 UTF-8);
	// nil when the publisher did not send one.
	PayloadFormat   *byte          `json:"pf,omitempty"`
	ContentType     string         `json:"ct,omitempty"`
	ResponseTopic   string         `json:"rt,omitempty"`
	CorrelationData []byte         `json:"cd,omitempty"`
	User            []UserProperty `json:"up,omitempty"`
}

// IsZero reports whether p carries no property at all.
func (p *Properties) IsZero() bool {
	return p == nil || (p.PayloadFormat == nil && p.ContentType == "" && p.ResponseTopic == "" &&
		p.CorrelationData == nil && len(p.User) == 0)
}

// Message is one published MQTT message as it is stored.
type Message struct {
	// ID is unique across nodes and sorts in publish order (see NewID).
	ID string
	// Topic is the topic name the message was published to.
	Topic string
	// Payload is any bytes; it round-trips exactly (nil and empty are both
	// returned as an empty, non-nil slice).
	Payload []byte
	QoS     byte
	Retain  bool
	// From is the publisher's client ID (column sender of mqtt_msg).
	From     string
	Username string
	PeerHost string
	// Node is the broker node that received the message.
	Node string
	// Time is when the broker received the message (column arrived of
	// mqtt_msg).
	Time time.Time
	// Expiry is when the message stops being delivered (MQTT 5 message
	// expiry, or the rule's expired_after); zero means never.
	Expiry time.Time
	// Mode is how the message is kept for offline subscribers. The Router
	// sets it from the rule that stored the message.
	Mode  Mode
	Props Properties

	// rule names the Router rule that sent this copy to a store, for the
	// logs of an async Pipeline.
	rule string
}

// Expired reports whether m has an expiry at or before now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expiry.IsZero() && !m.Expiry.After(now)
}

// Clone returns a deep copy of m.
func (m *Message) Clone() *Message {
	c := *m
	c.Payload = append([]byte{}, m.Payload...)
	if m.Props.PayloadFormat != nil {
		v := *m.Props.PayloadFormat
		c.Props.PayloadFormat = &v
	}
	if m.Props.CorrelationData != nil {
		c.Props.CorrelationData = append([]byte{}, m.Props.CorrelationData...)
	}
	if m.Props.User != nil {
		c.Props.User = append([]UserProperty(nil), m.Props.User...)
	}
	return &c
}

// Client is a client's connection state (a row of the mqtt_client table
// or collection, see Schema names in the package doc).
type Client struct {
	ID       string
	Username string
	PeerHost string
	// Node is the broker node the client is (or was last) connected to.
	Node string
	// Online tells a connect (true) from a disconnect (false).
	Online bool
	// OnlineAt is the time of the last connect; OfflineAt of the last
	// disconnect (zero while the client never disconnected).
	OnlineAt  time.Time
	OfflineAt time.Time
}

// Subscription is one client subscription (a row of mqtt_sub).
type Subscription struct {
	// Filter is the topic filter, possibly "$share/<group>/<filter>".
	Filter string
	QoS    byte
	// MQTT 5 subscription options.
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	Identifier        int
	// History asks, for fanout, that a new subscription starts at the
	// oldest stored message instead of "now". A repeated subscription to
	// the same filter keeps the start it already has.
	History bool
	// Start, when set, is the moment a new subscription starts, as an ID
	// (NewID when it was made): its fanout messages are those with greater
	// IDs. Empty means the moment the store writes it. An async Pipeline
	// sets it, so that a subscription that waited in the outbox starts when
	// it was made, not when it was written. History wins over Start; it is
	// not read back by lookups.
	Start string
}

// Ack is a subscriber's acknowledgement of one delivered message.
type Ack struct {
	// ID is the acknowledged message's ID.
	ID string
	// Topic is the message's topic name (fanout cursors are kept per
	// client and topic).
	Topic string
}

// Fetch limits what FetchOffline returns (offline_opts of the reference
// backends' on_message_fetch).
type Fetch struct {
	// Mode selects fanout (cursor) or queue (claim) messages.
	Mode Mode
	// Limit is the most messages returned (max_returned_count); 0 means
	// no limit.
	Limit int
	// Since returns only messages that arrived within this duration before
	// now (time_range); 0 means no time limit.
	Since time.Duration
	// Lease is how long a queue claim lasts before the message is handed
	// out to another consumer if it was not acked; 0 means DefaultLease.
	// The consumer holding the claim gets the message again at any fetch,
	// which renews the lease.
	Lease time.Duration
}

// DefaultLease is the queue claim lease used when Fetch.Lease is 0.
const DefaultLease = 30 * time.Second

// LeaseOrDefault returns f.Lease, or DefaultLease when it is not set.
func (f Fetch) LeaseOrDefault() time.Duration {
	if f.Lease > 0 {
		return f.Lease
	}
	return DefaultLease
}
