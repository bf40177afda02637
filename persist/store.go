package persist

import (
	"context"
	"time"
)

// Store is what a database backend does for a broker: the six verbs of the
// product. Every store in this module implements it and passes persisttest.
//
// Stores do not retry and do not log: they return errors (see Error) and
// leave policy to the Router and its pipeline. A store never closes a
// database client it did not create.
//
// Every method given a context that is already done returns the context's
// error (errors.Is matches context.Canceled or context.DeadlineExceeded) and
// changes nothing. Client IDs, topics and filters are compared byte for
// byte: case, trailing spaces and accents count, whatever a database's
// collation thinks. A store asked for what it lacks (no queue, no retained
// messages, ...) returns an error matching ErrUnsupported.
type Store interface {
	// Connected records a client's connection state; c.Online tells a
	// connect from a disconnect (the mqtt_client table, see Schema names
	// in the package doc). Username, PeerHost, Node and Online are stored
	// as given; a zero OnlineAt or OfflineAt keeps the stored time, so a
	// disconnect may carry OfflineAt alone and a reconnect keeps the last
	// OfflineAt.
	//
	// A connect always applies. A disconnect from node N applies only
	// when the client is stored as connected to N, is not stored as
	// online, is stored with no node, or is not stored at all (it is then
	// stored offline, as given). A disconnect never marks offline a
	// client that is online on another node — the client moved there, and
	// the disconnect from its old node reached the database late — and
	// then changes nothing, not even OfflineAt. An empty c.Node is a node
	// like any other: such a disconnect does not apply to a client online
	// on a named node. Stores decide this atomically, with the write, so
	// nodes sharing a database need no lookup before they write.
	Connected(ctx context.Context, c *Client) error
	// Subscribed adds or updates subs and removes the filters in removed
	// for one client (the mqtt_sub table). A removed filter also forgets
	// the subscription's fanout start. subs apply in order, so of a filter
	// given twice the last counts (as MQTT handles a SUBSCRIBE). Removing
	// a filter that is not stored is not an error. An invalid filter in
	// subs returns an error matching ErrInvalid and changes nothing.
	Subscribed(ctx context.Context, clientID string, subs []Subscription, removed []string) error
	// Publish stores a batch of messages (the mqtt_msg table), in one
	// round trip where the database allows. Messages that are already
	// expired are not stored. A message whose ID is already stored (or
	// given twice) is stored once. A batch with an invalid topic name
	// (empty, with a wildcard, a NUL or invalid UTF-8) is rejected whole,
	// before anything is written, with an error matching ErrInvalid.
	Publish(ctx context.Context, msgs ...*Message) error
	// Acked records a client's acks: a queue message claimed by the client
	// is deleted; a fanout ack marks that one message as acknowledged by
	// the client, so that fanout fetches of the client never return it
	// again (the mqtt_acked table). A fanout ack says nothing of other
	// messages: acking a message with a later ID (or one stored earlier)
	// does not skip a message the client has not acked, whenever and on
	// whichever node that message was stored — messages are acknowledged
	// one by one, in any order, and none is skipped.
	// An ack of a queue message by a client that has not claimed it
	// changes nothing, and an ack of a queue message acks no fanout
	// message. Any other ack is a fanout ack, recorded even when its
	// message is not (yet) stored: an asynchronous pipeline may write the
	// ack first.
	Acked(ctx context.Context, clientID string, acks ...Ack) error
	// Retain sets or replaces the retained message of m.Topic, with all
	// its fields; an empty payload deletes it (the mqtt_retain table). An
	// invalid topic name returns an error matching ErrInvalid.
	Retain(ctx context.Context, m *Message) error
	// FetchOffline returns the stored messages for clientID whose topic
	// matches filter (wildcards allowed), in ID order, honouring opt:
	//   - Fanout: the messages the client has not acked (see Acked) whose
	//     ID is after the start of the client's stored subscription to
	//     exactly this filter (a new subscription starts at the moment it
	//     was stored, or at the oldest message with Subscription.History;
	//     with no stored subscription to filter there is no start bound);
	//   - Queue: unclaimed (or lease-expired) messages and the messages
	//     clientID has claimed already (a consumer that reconnects gets its
	//     unacked messages again at once, not when its lease runs out),
	//     atomically claimed for clientID — a new lease from now — so that
	//     no other consumer gets them while the claim lasts.
	// A fanout fetch returns only Fanout messages and changes nothing (it
	// returns the same messages again until they are acked); a queue fetch
	// returns only Queue messages, and claims (or renews the claim of) only
	// those it returns: a queue message claimed by another client whose
	// lease has not run out is never returned. Limit keeps the first
	// messages in ID order; Since is measured against Message.Time.
	// Expired messages are never returned. A filter starting
	// with a wildcard matches no topic starting with '$' [MQTT-4.7.2-1].
	// An invalid filter returns an error matching ErrInvalid.
	FetchOffline(ctx context.Context, clientID, filter string, opt Fetch) ([]*Message, error)
}

// ClientLookup is implemented by stores that can read a client's state back.
//
// If a store does not implement ClientLookup, Router.Client skips the rules
// it serves, and returns an error matching ErrUnsupported when no rule with
// OnConnected has a store that implements it. persist/mochi then writes a
// disconnect without first checking whether the client is online on
// another node (Store.Connected still leaves such a client online), and
// removes the stored subscriptions of an expired session even when the
// client has connected to another node meanwhile.
type ClientLookup interface {
	// Client returns the stored state of a client, or an error that
	// matches ErrNotFound.
	Client(ctx context.Context, clientID string) (*Client, error)
}

// SubscriptionLookup is implemented by stores that can read subscriptions
// back (on_subscribe_lookup of the reference backends).
//
// If a store does not implement SubscriptionLookup, Router.Subscriptions
// leaves out the rules it serves, and returns an error matching
// ErrUnsupported when no rule with OnSubscribed has a store that implements
// it. persist/mochi then restores no session from the store, and treats a
// lookup that fails with ErrUnsupported the same way: a client gets back
// only the subscriptions the broker's memory holds (none after a restart or
// on another node), and a clean start does not remove the subscriptions
// stored before a restart or on another node.
type SubscriptionLookup interface {
	// Subscriptions returns a client's stored subscriptions, ordered by
	// filter byte-wise (as Go compares strings); none is not an error.
	Subscriptions(ctx context.Context, clientID string) ([]Subscription, error)
}

// RetainLookup is implemented by stores that can read retained messages
// back (on_retain_lookup of the reference backends).
//
// If a store does not implement RetainLookup, Router.Retained leaves out the
// rules it serves, and returns an error matching ErrUnsupported when no rule
// with OnRetain has a store that implements it. persist/mochi then loads no
// retained messages at start and does not refresh them from the store when
// a client subscribes: the broker serves the retained messages in its own
// memory only.
type RetainLookup interface {
	// Retained returns the retained messages whose topic matches filter
	// (wildcards allowed), ordered by topic byte-wise (as Go compares
	// strings); expired ones are left out. An invalid filter returns an
	// error matching ErrInvalid.
	Retained(ctx context.Context, filter string) ([]*Message, error)
}

// Pinger is implemented by stores that can check their database is reachable.
//
// If a store does not implement Pinger, Router.Ping leaves it out (a Router
// whose stores have none returns nil), Pipeline.Ping returns an error
// matching ErrUnsupported, and PipelineOptions.Health has no effect: the
// pipeline notices an outage only when a write fails.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Closer is implemented by stores that hold resources. After Close every
// method returns an error matching ErrClosed; closing again returns nil or
// such an error. Close does not close database clients the caller passed
// in.
//
// Nothing in this module closes a store but its owner (Router.Close and
// Pipeline.Close leave stores open). If a store does not implement Closer,
// it holds nothing to release: its owner has nothing to call, and the store
// works until the program drops it.
type Closer interface {
	Close() error
}

// FetchPlanner is implemented by stores that know which published messages
// FetchOffline can give back, and in which mode. A Router implements it
// from its rules (see Router.Fetchable). A broker adapter asks it for each
// publish: persist/mochi delivers a message that is fetchable from the
// store alone (the broker neither sends it nor queues it in memory), and
// any other message the broker's own way.
//
// If a store does not implement FetchPlanner, persist/mochi takes every
// QoS 1 and 2 message (and QoS 0 with its Options.QoS0) as fetchable in
// Fanout mode when the store handles both OnPublish and OnFetch (see
// EventSupporter; a store without Events handles both), and no message
// otherwise.
type FetchPlanner interface {
	// Fetchable reports whether FetchOffline can give back a message that
	// Publish stores for the topic name at this QoS, and in which mode.
	Fetchable(topic string, qos byte) (Mode, bool)
}

var _ FetchPlanner = (*Router)(nil)

// EventSupporter is implemented by stores that handle only some events,
// such as a time-series writer that only stores publishes. A store that
// does not implement it is taken to handle AllEvents.
type EventSupporter interface {
	// Events returns the events the store handles.
	Events() Event
}

// Claimer is implemented by stores that can lease a shared subscription
// group's messages to one member at a time. A Router whose fanout stores
// are Claimers gives each message of a group to one member cluster-wide
// (see Router.SharedGroups); without one, a broker adapter picks a member
// on each node.
//
// A group is named by its shared filter ("$share/<group>/<filter>"); a
// member is a client ID. Claims are kept apart from queue claims and from
// acks: a claim says only who has a message now.
type Claimer interface {
	// Claim claims the messages with the given IDs in group for owner,
	// until lease from now, and returns the IDs it claimed, in the order
	// given: those nobody claimed, whose claim ran out, or that owner
	// claimed already (its claim is renewed). The others are claimed by
	// another member whose lease has not run out. An ID need not be a
	// stored message's. Concurrent claims of one ID, from any node, give
	// it to one owner. A lease of zero or less releases owner's claims
	// of the IDs (anyone can claim them at once) and returns nil.
	Claim(ctx context.Context, group, owner string, lease time.Duration, ids ...string) ([]string, error)
}
