// Package mongostore keeps an MQTT broker's state — client connection
// state, subscriptions, offline messages (queue and fanout), retained
// messages and acks — in MongoDB collections shaped like the seeds'
// (mqtt_client, mqtt_sub, mqtt_msg, mqtt_retain, mqtt_acked, and this
// package's mqtt_acked_msg, mqtt_claim, mqtt_writer, mqtt_group_claim
// and, on FerretDB, mqtt_topic), on the official driver
// go.mongodb.org/mongo-driver/v2. It needs no multi-document transactions
// and no atomic updates: every step that decides something is a
// single-document insert under a unique key or a delete, so it works alike
// on MongoDB (standalone, replica set, sharded), Amazon DocumentDB, Azure
// Cosmos DB for MongoDB and FerretDB (see Servers). Several broker nodes
// may share one database: no fanout message is skipped whichever node
// stored it (see Skip nothing), and a Store is a persist.Watcher that
// tells the nodes of the messages stored on the others (see Watch).
//
// New takes a *mongo.Database of a client the caller made and keeps
// owning; Open takes a mongodb:// or mongodb+srv:// URL (replica set,
// authSource, TLS, write concern and read preference through the
// driver's URI options, plus the seeds' w_mode and r_mode) and owns the
// client it makes; persist.Open takes the same URLs once this package is
// imported. The indexes are made by an explicit Migrate.
//
// # Collections
//
// With the default names (Options: a CollectionPrefix, or a name per
// collection), the seeds' own look-ups work on the store's data and show
// what the seeds show:
//
//	db.mqtt_client.findOne({clientid: "test"})  clientid, state 1/0, node, online_at, offline_at
//	                                            (Unix seconds; offline_at null until the first disconnect)
//	db.mqtt_sub.find({clientid: "test"})        clientid, topic (the filter), qos
//	db.mqtt_msg.find({sender: "test"})          msgid, topic, sender, qos, retain, payload, arrived (Unix s)
//	db.mqtt_retain.findOne({topic: "retain"})   topic, msgid, sender, qos, payload, arrived
//	db.mqtt_acked.find({clientid: "test"})      clientid, topic, mongo_id (the highest message ID the
//	                                            client's watermark passed acked)
//
// Fields this package adds:
//
//	mqtt_client  _id "<len>:<clientid>:<v>"; v, the version (see Atomic steps); written (a date);
//	             online_at_ms, offline_at_ms; username, peerhost. A superseded version is a
//	             tombstone {_id, t: clientid, written}, kept a minute; a disconnect from a
//	             node the client has left is a note {_id "r:…", t: clientid, node, released:
//	             true, written}, kept as long, for the watches (persist.Notice.Offline)
//	mqtt_sub     no_local, retain_as_published, retain_handling, identifier (MQTT 5 options);
//	             start: the fanout start (an ID; "" = from the oldest message)
//	mqtt_msg     _id = msgid; mode ("fanout", "queue"); stored: the stamp of the Publish (a
//	             date, see Skip nothing); expire_at (a date; absent: never); arrived_ms;
//	             username, peerhost, node (absent when empty); props {format, content_type,
//	             response_topic, correlation (binary), user: [{k, v}]}; payload_raw (see Payloads)
//	mqtt_retain  the same fields but _id, stored and mode
//	mqtt_acked   wt, wid: the client's watermark of the topic (a date and an ID); a document
//	             whose topic is a wildcard filter holds the client's floor of that filter
//	dates        stored and written also as whole seconds, minutes, hours and days since the
//	             epoch (stored_s, stored_m, stored_h, stored_d; written_s, …), see Servers
//
// Collections this package adds:
//
//	mqtt_acked_msg  clientid, topic, msgid, at: a client's ack of one fanout message above its
//	                watermark
//	mqtt_claim      _id "<msgid>/<gen>", msgid, gen, topic, clientid, until, acked, at: generation
//	                gen of a queue message's claim (see Queue)
//	mqtt_writer     _id (a Store value's own), since, at: the stamp since which that store value
//	                may be writing a Publish, or null (see Skip nothing)
//	mqtt_topic      FerretDB only: _id = topic, stored, node: the topic's last Publish, for
//	                polling watches (see Watch)
//	mqtt_group_claim  _id "<len>:<group>:<msgid>/<gen>", group, msgid, gen, clientid ("" when
//	                  released), until, at; tomb: true and expire_at on a tombstone:
//	                  generation gen of the claim of message msgid in shared subscription
//	                  group <group> ("$share/<name>/<filter>", see Group claims)
//
// Indexes (Migrate): the seeds' four — mqtt_client {clientid, node}
// (the seeds' node: 2 as 1, which servers now refuse), mqtt_sub
// {clientid}, mqtt_msg {sender, topic}, mqtt_retain {topic}, made unique —
// and the unique keys the atomic steps rely on: mqtt_sub {clientid,
// topic}, mqtt_acked {clientid, topic}, mqtt_acked_msg {clientid, msgid}
// (with the _ids of mqtt_client, mqtt_msg and mqtt_claim); and what the
// reads go by: mqtt_client {clientid, v} and {written}, mqtt_msg {topic,
// stored}, {stored} and {expire_at}, mqtt_retain {expire_at},
// mqtt_acked_msg {clientid, topic}, mqtt_claim {topic}, mqtt_group_claim
// {group, msgid}, {until} and {expire_at}. The expire_at indexes are TTL
// indexes (expireAfterSeconds 0) where the server has them. Client IDs, topics and node names are index keys: they are kept
// to MaxClientIDLen, MaxTopicLen and MaxStringLen bytes, and longer input
// is refused (persist.ErrInvalid) before anything is written.
//
// Client IDs, topics, filters and every other name are values, never
// field names or operators: a topic such as {"$gt":""} or a.b is stored
// and matched as the string it is.
//
// # Payloads
//
// Options.PayloadFormat is the seeds' payload_format. With MongoJSON (the
// default) a payload that is a JSON object or array is stored as a
// document or array, so that db.mqtt_msg.find({"payload.temp": {$gt: 20}})
// finds it; numbers become int32, int64 or double. When the document
// does not give the exact bytes back (whitespace, escapes, 1.0 for 1, key
// order is kept), the bytes are kept beside it in payload_raw, and reads
// return them. JSON the server cannot keep as a document as it is — a key
// that is empty, starts with '$', holds '.' or U+0000, or repeats; U+0000
// in a string; nesting deeper than 64; a number out of range or -0 — and
// any other payload is stored as with PlainText: a string when it is
// valid UTF-8 without U+0000, else binary. A document the server refuses
// all the same is written again the PlainText way: never an error that
// loses the message. Every payload comes back byte for byte.
//
// # Atomic steps
//
// Nothing relies on an update being atomic, so no step needs a
// transaction or a server that applies updates atomically (FerretDB 1.x
// does not: it reads, changes and writes back a document apart, so that
// 8 clients running 50 $inc each on one document leave it at 84, not 400,
// and 4 concurrent findOneAndUpdate claims of one document all succeed).
// What is atomic everywhere is an insert under a unique key (one of two
// fails with a duplicate key) and a delete:
//
//   - Connected reads the client's latest version and inserts the next,
//     decided from it, under the _id of that version: of two writes
//     decided from one version, one is inserted and the other decides
//     again from the newer state. So a disconnect from a node the client
//     has left never overwrites its connect on the new one. The older
//     version becomes a tombstone that keeps its _id (a version is written
//     once) for a minute, longer than a Connected may take.
//   - A queue claim is the insert of the next generation of the message's
//     claim (see Queue); an ack of it by its claimant the insert of a final
//     generation, after which the message is deleted.
//   - A group claim (Store.Claim) is likewise the insert of the next
//     generation of an ID's claim in the group (see Group claims).
//   - Publish inserts messages under their ID (a message stored twice
//     fails on the _id and is left as it is); fanout acks are inserted
//     under (clientid, msgid).
//   - A cursor moves by a compare and set (an update whose filter names
//     the old watermark); on FerretDB two moves at the same moment may
//     both apply, and the lower may win: the client then gets acked
//     messages again (a duplicate, never a skip).
//   - Subscribed upserts on (clientid, topic) and Retain replaces on
//     topic: the last write wins, and a repeated subscription keeps its
//     start ($setOnInsert).
//   - A store value's writer document (mqtt_writer) is written by that
//     store value alone, one write at a time.
//
// # Skip nothing
//
// Fanout acks are per message (persist.Store). An ack is a document of
// mqtt_acked_msg; a fanout fetch returns the client's messages on the
// matching topics after its watermark and the subscription's start that
// it has not acked, Limit at a time from the server in ID order ($nin of
// the acks above the watermark, {_id: 1} sort). The watermark keeps the
// acks few: per client and topic (mqtt_acked) it is a position every
// message of the topic at or before which the client acked, was not due
// to it, or saw expire; a fetch moves it over such messages of a window
// it reads in position order (1000 at most, on the {topic, stored}
// index) and deletes the acks it covers. For a wildcard filter it also
// moves the client's floor of the filter: the least position among the
// first messages that the watermarks of the filter's topics did not pass,
// so that the next fetch of the filter reads from there (a range on
// {stored}).
//
// A message's position is the stamp Publish gives it — the store's clock
// when it sends the write, to the millisecond, never less than its last
// stamp — then its ID. MongoDB without transactions has no counter that
// is assigned with the insert in commit order, and a stamp is not one
// either: a slow write becomes readable after one stamped later. So a
// watermark passes only settled messages, stamped before the horizon of
// the fetch:
//
//   - Before it stamps a write, a store value makes sure its writer
//     document (mqtt_writer; the store value alone writes it) says it is
//     writing since a time no later than the stamp: when the document says
//     it writes nothing, it first writes the time, and stamps once that
//     write returned. When its writes end, it moves the time on to the
//     oldest write still running, or to null (none), 20ms later.
//   - A fetch reads every writer document, then the messages. Its horizon
//     is the oldest time the documents give, and at most twice
//     Options.ClockSkew (default 500ms) before its own clock: a write whose
//     document it read as writing nothing stamped after that read, later
//     than its clock less the skew.
//   - A write gets Options.WriteTimeout (default 10s) from its stamp (its
//     context's deadline, which the driver also sends to the server as
//     maxTimeMS) and fails rather than taking longer: a time older than
//     that before the horizon (a store value that stopped while writing)
//     holds a fetch back no further.
//
// Then no message is skipped provided the broker nodes' clocks are within
// ClockSkew and the server does not apply a write long after the driver
// gave up on it (MongoDB stops an operation at its maxTimeMS). A message
// published on another node with an older ID (a clock that is behind, an
// outbox replay) is stamped when it is stored, so it lies after the
// watermark of a client that acked newer ones, and is delivered. A write
// that begins after a quiet spell costs one more round trip (the writer
// document); under load the document is moved on behind the writes.
//
// The acks of the messages after the watermark stay individual, and a
// fetch reads them: the unsettled ones (about a second's worth) and those
// after the client's oldest unacked message. A message that was due to
// none of the client's subscriptions (an ID at or before the earliest
// start of its stored subscriptions that match the topic) does not hold
// the watermark back; a subscription made later with History does not
// see the messages the watermark passed so. Acks of messages that are not
// stored (QoS 0, an ack written before its message by an asynchronous
// pipeline) go after Options.AckGrace (1h).
//
// # Queue
//
// A queue fetch reads the candidates (without payloads) and their claims,
// and takes, in ID order up to Limit, those that are unclaimed, whose
// lease ran out or that the client claimed already, by inserting the next
// generation of each claim (a new lease from now, on the fetching node's
// clock): of two consumers taking a message at once, one inserts the
// generation and the other leaves the message. It then reads the
// messages it won and deletes their older generations. An ack by the
// latest claimant inserts the final generation (after which no one can
// take the message, also not a consumer whose lease is newer) and deletes
// the message and its claims. DeleteExpired finishes what a claimant left
// half done.
//
// # Group claims
//
// Store is a persist.Claimer: a shared subscription group's messages are
// leased to one member at a time, cluster-wide. Claim reads the claim
// generations of the IDs in the group (one query, {group, msgid $in}) and
// inserts, in one unordered InsertMany, the next generation of each ID
// that has none, whose latest lease ran out (on the reading node's clock)
// or whose latest is the claiming member's own (a renewal): of two members
// claiming an ID at once, from any node, one inserts the generation and
// the other fails on the _id (a duplicate key) and does not get the ID. A
// release (a lease of zero or less) inserts, for each ID the member
// holds, a released generation (no owner, run out), which anyone may
// take next. An upsert on a single claim document would need the update to
// be atomic, which FerretDB's is not (see Atomic steps).
//
// A generation's _id must never be taken again by a write decided from
// the generation before it: so a generation that is not the latest is
// deleted (by a later Claim of its ID) only once it is settled, older
// than twice WriteTimeout plus twice ClockSkew (a Claim reads and inserts
// within WriteTimeout), and an ID's latest generation is never deleted
// while a Claim could decide from it. DeleteExpired ends the claims whose
// latest lease ran out more than ten minutes before (up to 1000 IDs per
// call) in two steps: it inserts a tombstone as the next generation,
// which no Claim takes (one that decided from the generation before fails
// on its _id) and deletes the generations before it; the tombstone goes,
// once settled, by the TTL index on expire_at where the server has one,
// else by a later DeleteExpired. An ID is not claimed while its tombstone
// stands (about 20 s with the defaults, plus until the TTL monitor or
// DeleteExpired runs again); its message then goes to the next fetch
// after that. Without DeleteExpired, each ID a group ever claimed keeps
// one document (its latest generation): call it now and then on every
// server (examples/broker calls it every minute).
//
// # Watch
//
// On a replica set or a sharded cluster a watch reads a change stream of
// the database's inserts into mqtt_msg and of client versions and notes
// into mqtt_client (connects, and disconnects as Offline notices): each
// node hears of every insert and matches its topic
// against its filters. Without change streams (a standalone MongoDB,
// FerretDB, DocumentDB or Cosmos DB refusing the stream) it polls every
// Options.PollInterval (default 50ms) with range queries on indexes —
// the writer documents, for the settled horizon (see # Skip nothing);
// messages stamped since the newest seen, but not since the horizon, on
// {stored}; client versions and notes written since, on {written} — and
// once a second two seconds further back: 60 small indexed queries a
// second per node. A message stamped before another can become readable
// after it; its store's writer document says it is writing since its
// stamp until it is, so the next polls read from there again. On
// FerretDB a poll reads the topic registry (mqtt_topic, which Publish
// writes there, behind the write: one upsert per topic and publishing
// node of the batches stored while the last one ran; the Publish's write
// ends, in its writer document, once the registry holds its topics) and
// the client versions by the minute bucket of their written date, so that
// it passes over small collections only. A poll tells of each topic once,
// naming the node that published there since the previous poll — none
// when several did, so that every node hears of the others' messages. A
// notice is a hint to fetch: one missed delays that delivery to the
// client's next fetch; it loses nothing.
//
// # Servers
//
// What the store uses, and what it does on a server without it:
//
//   - unique indexes, single-document inserts, deletes, upserts, $set,
//     $setOnInsert, unordered InsertMany and BulkWrite: needed (every
//     server here has them);
//   - TTL indexes: Migrate asks for them on expire_at and makes plain
//     indexes where the server refuses (FerretDB says NotImplemented); TTL
//     reports which. Expired messages are never returned either way, and
//     DeleteExpired deletes them (examples/broker calls it every minute);
//   - change streams (replica sets and sharded clusters of MongoDB,
//     DocumentDB with them enabled, Cosmos DB): used by Watch, else
//     polling (see Watch). Only polling is tested: this project's test
//     server, FerretDB, is no replica set, and no MongoDB server could be
//     had on its machines;
//   - transactions and atomic updates: not used, so not needed;
//   - unacknowledged writes (Options.Unsafe, w_mode = unsafe): used for
//     messages and retained messages, but not on FerretDB, which answers
//     them and so puts the driver's connection out of step.
//
// FerretDB 1.x (tested: 1.24 on PostgreSQL, which the tests run on) has
// no TTL indexes, transactions, change streams or atomic updates, and
// passes only top-level equality down to PostgreSQL: it filters ranges,
// $in, sorts and limits in memory, after reading every document the
// equality selects (PostgreSQL itself scans the table for each query).
// The store finds it out (buildInfo names a ferretdbVersion) and reads
// date ranges there by equality on their bucket fields (at most 16
// queries of the finest bucket size that covers the range) and polls the
// topic registry: correct, but a fetch still costs a pass over the
// collection and the decoding of every message since the client's
// watermark (about 0.1–1 ms each), so keep topics' histories short there
// (message expiry and DeleteExpired). On Cosmos DB and DocumentDB keep
// topics and client IDs short enough for their index key limits (a
// compound key of clientid and topic).
//
// # Errors
//
// Errors are *persist.Error values of the store ("mongostore") and
// operation: errors.Is matches persist.ErrInvalid (bad input, naming what
// was wrong, before anything is written), persist.ErrNotFound (Client),
// persist.ErrClosed (after Close) and persist.ErrUnavailable (a network
// error, a server that cannot be selected or does not answer in time, a
// primary stepping down), and errors.As reaches the driver's error
// (mongo.CommandError, mongo.WriteException, ...). Retryable: the
// unavailable ones and the server's transient codes (WriteConflict,
// LockTimeout, labels RetryableWriteError); not: duplicate keys,
// validation, unknown commands, a client the caller disconnected. A done
// context is returned as is. The store does not retry (but Connected
// decides again when another write of the client came first) and does
// not log.
//
// # Caveats
//
//   - The skip-nothing argument rests on ClockSkew and WriteTimeout (see
//     Skip nothing): broker nodes' clocks within ClockSkew, a server that
//     honours maxTimeMS.
//   - Limit keeps the first messages in ID order; a fetch reads the
//     unacked messages a page of Limit at a time, so a client with many
//     acks above its oldest unacked message (over 1000: then they are
//     left out by the store, not the server) reads more pages.
//   - Queue and group leases and watermark horizons use the clock of the
//     node that reads; client versions and stamps the clock of the node that writes.
//   - Client lookups, subscriptions and retained messages can read from a
//     secondary (Options.LookupReadPreference, r_mode = slave_ok); fetches,
//     claims and Connected read the primary.
//   - On FerretDB a Claim reads every claim of its group still kept (the
//     group is the one equality passed down; the IDs are matched in
//     memory): claims of the last ten minutes and more, until DeleteExpired
//     ends them (see Group claims).
//   - Between a Connected and the tombstoning of the version before it, a
//     client has two documents in mqtt_client for a moment (reads take the
//     higher v); a process that stops in between leaves both until the
//     client's next Connected.
package mongostore
