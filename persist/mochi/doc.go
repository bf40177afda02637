// Package mochi makes a github.com/mochi-mqtt/server/v2 broker remember:
// it registers a persist.Store (normally a *persist.Router) as a mochi hook
// that keeps client state, subscriptions, messages for offline delivery,
// retained messages and acks in the store, and delivers stored messages to
// the clients that missed them — after a reconnect, after a broker restart,
// or on another broker node that shares the database.
//
//	server := mqtt.New(nil)
//	h := mochi.New(server, router, &mochi.Options{Node: "node-1"})
//	if err := server.AddHook(h, nil); err != nil { … }
//
// # Events
//
// The Hook maps mochi's events to the store's verbs (the seeds' hooks):
//
//	session established  Connected (online, node, online_at); the stored
//	                     subscriptions restored into the session; replay
//	disconnect           Connected (offline, offline_at)
//	subscribe            Subscribed; retained messages refreshed from the
//	                     store (RetainLookup); fetch of queued and new messages
//	unsubscribe          Subscribed (removed), also when a session ends
//	                     (clean start, expiry at disconnect, OnClientExpired)
//	publish              Publish, before mochi sends the PUBACK (concurrent
//	                     publishes share one store call: group commit)
//	retained publish     Retain (an empty payload deletes)
//	PUBACK, PUBREC       Acked with the delivered message's ID and topic
//	server start         StoredRetainedMessages (RetainLookup "#")
//
// # Semantics
//
// A message that the store keeps and can give back (FetchOffline, as
// persist.Router.Fetchable says; by default every QoS 1 and 2 message) is
// delivered by the Hook alone: OnPublish stores it, tags it and marks it
// for mochi to ignore (mochi neither sends it nor queues it in memory for
// offline sessions), and OnPublished routes it to the connected subscribers
// as mochi would (shared groups, No Local, Retain As Published, subscription
// identifiers, QoS the lower of message and subscription). Offline
// subscribers get it from the store when they connect. So every persisted
// message has one way to a client, and a client gets it once — across
// reconnects, restarts and nodes — without mochi's memory and the store
// both replaying it. Messages the store cannot give back (QoS 0 by default,
// topics no rule keeps, or a failed Publish) go through mochi as usual.
//
// Each connection has one delivery goroutine, the only sender of persisted
// messages to that client. At connect, and after a new subscription, it
// replays the store for every subscription in ID order, a page at a time
// (Options.Page, growing while the client stays behind), until the store
// has nothing more; then it sends live messages from memory. A client that
// cannot take live messages as fast as they come has the ones beyond
// Options.Buffer dropped from memory and replayed from the store, and goes
// live again once a fetch has returned everything (messages dropped from
// memory during that fetch included). Fanout messages are those the client has not
// acknowledged; queue messages are claimed (so two consumers never get the
// same one; a live queue message makes the connected consumers claim). The
// client's acks (PUBACK, and PUBREC for QoS 2: the client owns the message
// then) are recorded in batches off the client's read path, each for its
// message alone (persist.Store.Acked), so no message is skipped whatever
// order the client acknowledges in. Messages in flight when the connection ends are taken
// out of mochi's session, so the next connection (on any node) gets them
// from the store, in order, rather than as mochi's resends.
//
// Sessions are restored at connect, not at start: when the store has
// subscriptions for a client that connects without a clean start, the Hook
// reconciles mochi's offline session with them or, when mochi has none (a
// restart, another node), makes one that mochi takes over, so the CONNACK
// says the session is present and the client need not subscribe again. A
// clean start removes the stored subscriptions. Retained messages are
// loaded at start (StoredRetainedMessages) and refreshed from the store
// before mochi sends them to a new subscription, which shows retained
// messages set or deleted on other nodes.
//
// MQTT 5 properties survive the store, and a persisted message reaches
// the client as mochi would send it: see MQTT 5 on the wire.
//
// # Flow control
//
// A client never has more persisted messages in flight than Options.Window,
// its Receive Maximum, or half of the server's MaximumInflight, so mochi
// never drops one for a full inflight store; the next page is fetched when
// acks made room, so a backlog of any size replays in bounded memory. Live
// messages wait in memory (Options.Buffer per client); when a client falls
// behind, those the store can give back are dropped from memory and
// replayed from the store instead (Stats.Spilled). Every store call is
// bounded by Options.Timeout; a failure is logged with the client and topic
// and counted (Stats.Failed), and delivery retries with backoff.
//
// The persisted messages a delivery sends at once (up to a window's worth)
// reach the client's connection in one write, not one write each: mochi
// still encodes every packet, and the bytes go out together (batch.go).
//
// # MQTT 5 on the wire
//
// A persisted message reaches the client as mochi itself would send it at
// that moment, whether live, replayed after a reconnect, after a restart
// or on another node: the Hook sends it through mochi's own code where
// mochi exposes it (the connection's topic alias table, a topic index to
// merge overlapping subscriptions, Client.WritePacket for the encoding and
// its size and problem-information rules). TestDifferential runs scripted
// sessions of MQTT 5 and 3.1.1 clients against mochi alone and with the
// Hook on SQLite, PostgreSQL and Redis and compares every packet the
// clients receive, field by field. Feature by feature:
//
//	Topic Alias          from the connection's alias table, mochi's own
//	(server to client)   (OutboundTopicAliases, shared with mochi's own
//	                     deliveries): the first message of a topic sets the
//	                     alias with the topic name, the next ones use it with
//	                     an empty name; none once the client's Topic Alias
//	                     Maximum is used up. An alias belongs to the
//	                     connection [MQTT-3.3.2-10]: a replayed message gets
//	                     one of the new connection.
//	Subscription         those of every matching subscription, ascending,
//	Identifier           one message for overlapping subscriptions, merged
//	                     as mochi merges them (its topic index): the
//	                     highest QoS, No Local if any asks, Retain As
//	                     Published of the subscription mochi finds first.
//	No Local             a client's own messages are not delivered to it,
//	                     live or replayed [MQTT-3.8.3-3].
//	Retain As Published  the retain flag of a message as published only for
//	                     subscriptions that ask (MQTT 5), else 0
//	                     [MQTT-3.3.1-12].
//	Retain Handling      retained messages are mochi's own (refreshed from
//	                     the store before mochi sends them), so 0, 1 and 2
//	                     are mochi's [MQTT-3.3.1-9..11].
//	Message Expiry       what is left of it, counting down while the message
//	Interval             is stored [MQTT-3.3.2-6]; an expired message is not
//	                     sent [MQTT-3.3.2-5]. The stored expiry is mochi's:
//	                     the publish second plus the interval, capped by the
//	                     server's MaximumMessageExpiryInterval. A Router's
//	                     Rule.Expiry gives one to messages without one (also
//	                     on the wire).
//	Payload Format,      stored and sent unaltered [MQTT-3.3.2-4]
//	Content Type         [MQTT-3.3.2-20].
//	Response Topic,      stored and sent unaltered [MQTT-3.3.2-15]
//	Correlation Data     [MQTT-3.3.2-16].
//	User Property        stored and sent in order, repeated keys kept
//	                     [MQTT-3.3.2-18]; left out, as by mochi, when they
//	                     would make the packet larger than the client takes.
//	                     mochi drops them when Request Problem Information is
//	                     0; the Hook keeps them (see Caveats).
//	Maximum Packet Size  a larger message is not sent and counts as
//	                     delivered [MQTT-3.1.2-25]; as with mochi's own, a
//	                     topic alias taken for it stays taken, though the
//	                     client never saw it.
//	Receive Maximum      kept for persisted messages (Flow control).
//	QoS                  the lowest of the message's, the subscription's and
//	                     the server's maximum [MQTT-3.8.4-8].
//	Shared Subscription  one member of the group gets a message, a connected
//	                     one when there is one (see Caveats).
//	DUP, Packet          a message this node sent on the client's previous
//	Identifier           connection and never had acknowledged is sent again
//	                     with DUP and its packet ID [MQTT-4.4.0-1]; others
//	                     with DUP 0 and an ID from the upper half (see
//	                     nextPacketID).
//	QoS 2                PUBREC records the ack (the client owns the message
//	                     then); PUBREL and PUBCOMP are mochi's, and a PUBREL
//	                     the client did not complete is resent by mochi when
//	                     the client reconnects to the same node.
//	MQTT 3.1.1 clients   the same path, without properties; the retain
//	                     flag is cleared [MQTT-3.3.1-9 in 3.1.1].
//
// Deliberately, a persisted delivery differs from mochi's in these (the
// differential test states each once):
//
//   - It survives a broker restart and reaches the client on another
//     node; mochi's session does not.
//   - A message replayed after a reconnect is sent as mochi sends a
//     message then, not as mochi resends its session: mochi sets DUP on
//     messages it never sent (queued while the client was away), keeps
//     the topic aliases of the connection that ended, orders its resends
//     by the publish second only, and sends them all at once past the
//     client's Receive Maximum.
//   - mochi's own send quota is off (see Caveats).
//   - A message too large for a client that was away is discarded; mochi
//     keeps it in the session, and its resend then ends every reconnect of
//     the client.
//   - A persisted QoS 1 or 2 message for a QoS 0 subscription of a client
//     that was away is replayed at QoS 0 when it comes back (MQTT allows
//     QoS 0 messages in the session state); mochi keeps none.
//   - After a restart, or on another node, a message the client did not
//     acknowledge before is sent as a first delivery (DUP 0, a new packet
//     ID), and a PUBREL it did not complete is not sent again: the store
//     keeps neither.
//   - A shared group's messages go to one member across nodes, and what
//     the group missed while no member was connected goes to the next
//     member (when the store keeps groups: persist.Router.SharedGroups);
//     mochi picks a member per broker and keeps nothing for a group.
//   - mochi gives every message without an expiry the server's
//     MaximumMessageExpiryInterval (a day by default; 0 for none). A
//     persisted message without one keeps none: replayed, it has no
//     Message Expiry Interval and does not expire (the store's rules say
//     how long it is kept: Rule.Expiry). Live, the Hook sends mochi's.
//   - A client that sets Request Problem Information to 0 gets the user
//     properties of PUBLISH packets (every one, mochi's too); mochi alone
//     drops them (see Caveats).
//
// # Several nodes
//
// Broker nodes that share a database behave as one broker. Every node
// names itself (Options.Node; nodes sharing a database need distinct
// names). When the store is a persist.Watcher (a persist.Router is one
// when its stores are: see each store's doc for how it notifies), the Hook
// watches the filters its connected clients subscribe to, each connection
// adding its filters before it reads the store. A message published on
// another node then makes the connections whose subscriptions match it
// read the store and deliver it at once (Stats.Replayed); the node's own
// messages are delivered live from memory as before. A client that
// connects to another node while it is still connected here is
// disconnected here (DISCONNECT 0x8E, session taken over [MQTT-3.1.4-2]),
// its unacknowledged deliveries going back to the store for the new
// connection. Acks are per message, so a message stored late — published
// on another node, committed late, replayed from an outbox, or stamped by
// a clock that is behind — is delivered all the same. A connection
// delivers live only what was published after its first read of the
// store began: an earlier message's live copy, which comes late when its
// own node's write of it returned late, is the store's to deliver (the
// read found it, or found it acknowledged on the client's connection
// before, perhaps on another node). Without a Watcher,
// a message from another node reaches a client at its next read of the
// store: when it reconnects, or when its own node makes it read.
//
// # Caveats
//
//   - The Hook turns off mochi's own send quota for every client (as mochi
//     has it for MQTT 3.1.1 clients): with it on, mochi's
//     Inflight.NextImmediate takes a read lock twice and deadlocks against a
//     concurrent writer. The Hook keeps to Receive Maximum for persisted
//     messages; mochi's other messages are sent without it.
//   - For persisted messages, other hooks' OnSelectSubscribers and read
//     OnACLCheck are not called (mochi has no way to call them from a hook);
//     set Options.ACL (for example to the auth hook's OnACLCheck) to keep
//     per-topic read rules. Subscriptions were checked when made.
//   - A queue message that a consumer may not take (Options.ACL, No Local)
//     is given back to the queue: the consumer's claim is released (a
//     fetch of its topic with a lease of a millisecond, once the consumer
//     has nothing else of that topic in flight) and the consumers on this
//     node that may take it are asked to fetch; those on other nodes get
//     it at their next fetch.
//   - Shared subscriptions: when the store keeps groups (a persist.Router
//     whose fanout stores are persist.Claimers — every store of this
//     module), a group's fanout messages come to its members from the
//     store only: each publish makes one connected member here fetch (the
//     members on other nodes hear of it from their watches), and a
//     member's fetch claims what it gets for the lease (Options.Fetch.Lease,
//     30 s by default); what it claimed and was not sent goes back when
//     the connection ends. A member whose session ends with the
//     connection gives back what it was sent and did not acknowledge too
//     (another member gets it at once); one whose session stays gets it
//     again when it comes back, or another member when the lease runs out. A member's ack is recorded for the group (whose
//     position is the client its shared filter names: such client IDs are
//     refused, CONNACK 0x85). A member whose own subscription matches a
//     message too gets it once, for both, when the store delivers it; when
//     it got it live first, the group's copy goes to a member when the
//     claim runs out. Without
//     groups, a message goes to a connected member on each node, and
//     fanout messages for a group with no connected member are not
//     replayed. Queue messages are claimed by members as usual.
//   - Delivery is at least once across a crash: acks are recorded within
//     about 20 ms; those not recorded yet are delivered again.
//   - Will messages are not stored for offline delivery (mochi keeps them
//     for offline sessions in memory). StoredClients, StoredSubscriptions
//     and StoredInflightMessages are not used: sessions come back at connect
//     and unacknowledged messages through the replay; a session that never
//     reconnects after a restart keeps its stored subscriptions.
//   - When Publish fails, mochi delivers the message from memory; if the
//     store kept it anyway, a client may get it twice.
//   - The Hook puts a wrapper around each client's connection
//     (Client.Net.Conn) when its session is established, to write a batch
//     of deliveries at once; a hook that needs the connection's own type
//     (a *tls.Conn, say) gets it from the wrapper's NetConn method, as from
//     a *tls.Conn: interface{ NetConn() net.Conn }.
//   - mochi drops the user properties of every packet when a client sets
//     Request Problem Information to 0; the Hook restores them on PUBLISH
//     packets, which that rule does not cover [MQTT-3.1.2-29].
package mochi
