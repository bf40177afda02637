// Package redisstore keeps an MQTT broker's state — client connection
// state, subscriptions, offline messages (queue and fanout), retained
// messages and acks — in Redis, in the seeds' key layout (mqtt:client:…,
// mqtt:sub:…, mqtt:msg:…, mqtt:acked:…, mqtt:retain:…), on
// github.com/redis/go-redis/v9.
//
// New takes a redis.UniversalClient the caller built and keeps owning: a
// *redis.Client (one server), a Sentinel failover client
// (redis.NewFailoverClient, master "mymaster" say) or a
// *redis.ClusterClient. Open takes a URL (redis://, rediss://,
// redis+sentinel://, redis+cluster://) and owns the client it makes.
// Nothing needs creating first: there is no Migrate.
//
// # Keys
//
// With the default Prefix "mqtt" (every key starts with Prefix and ':'),
// the seeds' look-ups work on the store's data as the seeds type them:
//
//	HGETALL mqtt:client:test   state 1/0, online_at, offline_at ("undefined" until the first
//	                           disconnect), node — times in Unix seconds, as the seeds;
//	                           plus username, peerhost, online_at_ms, offline_at_ms
//	HGETALL mqtt:node:node1    clientid → connect time (s) of the clients online on node1
//	HGETALL mqtt:sub:test      filter → QoS
//	HGETALL mqtt:msg:<msgid>   id, from, qos, topic, retain (true/false), payload (the bytes), ts (s);
//	                           plus ts_ms, expiry_ms (absent: never), mode (fanout/queue),
//	                           username, peerhost, node (absent when empty),
//	                           props (MQTT 5 properties as JSON, absent when none),
//	                           claimed_by and claim_until (ms, server time) of a queue claim
//	GET mqtt:acked:test:<topic>        the highest ID client test acked on topic
//	HGETALL mqtt:retain:<topic>        as a message hash, for the retained message of topic
//
// Keys this package adds:
//
//	mqtt:subopt:<clientid>   hash filter → MQTT 5 options "no_local retain_as_published
//	                         retain_handling identifier" (absent when all are zero)
//	mqtt:substart:<clientid> hash filter → the fanout start of the subscription: the ID made
//	                         when it was first stored ("" with Subscription.History)
//	mqtt:fanout:{<topic>}      sorted set of the IDs of topic's fanout messages, scored by
//	                           their position in the topic (see Order and acks)
//	mqtt:fanout:{<topic>}:seq  the last position given in topic
//	mqtt:fanout:{<topic>}:exp  the same IDs scored by when they expire (Unix ms, +inf: never)
//	mqtt:fanout:{<topic>}:ids  the same IDs scored 0, in ID order (ranges of IDs, ZRANGE BYLEX)
//	mqtt:queue:<topic>       sorted set of the IDs of topic's queue messages, scored by expiry
//	mqtt:cursor:{<clientid>}:w:<topic>  the client's watermark of topic: a position
//	mqtt:cursor:{<clientid>}:a:<topic>  sorted set of the IDs the client acked above it, scored by
//	                                    position (minus the ack's Unix ms when not stored yet)
//	mqtt:cursor:{<clientid>}:b:<topic>  the base: hash from, to (positions), start (an ID): the
//	                                    messages at positions in (from, to] with IDs at or
//	                                    before start, which the watermark passed unacked
//	                                    because they were due to none of the client's
//	                                    subscriptions — one range instead of an entry each
//	mqtt:cursor:{<clientid>}:k:<topic>  set (sorted, all scores 0) of the IDs in the base that
//	                                    the client acked (kept acks)
//	mqtt:cursor:{<clientid>}:p:<topic>  set (sorted, all scores 0) of the IDs below the watermark
//	                                    that it passed unacked (due to none of the client's
//	                                    subscriptions) where the base could not take them
//	mqtt:topics:{mqtt:fanout}      registries of the topics that have fanout messages,
//	mqtt:topics:{mqtt:queue}       queue messages and retained messages, for wildcard
//	mqtt:topics:{mqtt:retain}      filters: sorted sets of topic names scored by expiry
//	mqtt:topics:{mqtt:fanout}:lex  the same names scored 0, for ranges by name (ZRANGE BYLEX);
//	…:lex                          the hash tag keeps each pair in one Cluster slot
//	mqtt:groupclaim:{<group>}:<msgid>  the client ID that claimed message msgid in shared
//	                                   subscription group <group> ("$share/<name>/<filter>",
//	                                   see persist.Claimer), with its lease as the key's TTL
//
// and the pub/sub channels of Watch: mqtt:notify:<topic> (a notice per topic
// of each Publish, the publishing node as payload) and mqtt:connected (a
// client's notice per connect and disconnect, JSON
// {"client":…,"node":…,"at":<Unix ms>} or {"client":…,"node":…,"offline":true}).
//
// In {<topic>}, {<clientid>} and {<group>} — hash tags: one Cluster slot
// for a topic's fanout keys, one for a client's cursor keys, one for a
// group's claims — '%', '{' and '}'
// are percent-encoded (%25, %7B, %7D); everywhere else names are written
// as they are. Sorted sets scored by expiry skip expired entries in a range
// query and lose them by score.
//
// The seeds index a topic's messages in the sorted set mqtt:msg:${topic}.
// That name shares its namespace with the message hashes mqtt:msg:${msgid}:
// a message published to a topic spelled like another message's ID would
// collide with it (WRONGTYPE). The indexes are therefore mqtt:fanout:{…}
// and mqtt:queue:…, with scores of their own. (Before fanout messages had
// positions, their index was mqtt:topic:${topic}, scored by expiry; fanout
// messages stored there by an older version are not read, see Caveats.)
//
// The seeds' mqtt:acked:${clientid}:${topic} is ambiguous when a client ID
// holds ':' (client "a:b" on topic "c" and client "a" on topic "b:c" would
// share a key). A client ID holding ':' or '%' is therefore written there
// with those two bytes percent-encoded (%3A, %25). The store keeps the key
// for the seeds' look-ups; it reads the cursor keys.
//
// Keys and values are binary-safe: client IDs, topics and payloads are
// always separate arguments of a command, never text of one.
//
// # Semantics
//
// Connected writes the client hash with HSET (a zero OnlineAt or OfflineAt
// keeps the stored time), in a script on that one key that first checks a
// disconnect: one from a node other than the one the client is stored
// online on leaves the hash alone (the client moved). A connect adds the
// client to mqtt:node:${node}, a disconnect removes it from its node's
// (applied or not), and a connect on another node (a takeover) removes it
// from the node it was on; a connect is told to every watch (see Watch).
// Subscribed deletes the removed
// filters and then sets subs in mqtt:sub, mqtt:subopt and mqtt:substart
// (HSETNX: a repeated subscription keeps its start), and PUBLISHes one
// event per filter on Channel (default mqtt_channel), as the seeds show,
// in order:
//
//	{"type":"subscribe","topic":"topic0","clientid":"test","qos":0}
//	{"type":"unsubscribe","topic":"test_topic0","clientid":"test"}
//
// (The seeds' example prints the QoS as the string "0"; their schema says
// int, which is what is sent.)
//
// Publish writes per message its hash with a PEXPIREAT; per topic the IDs
// in the topic's index (for fanout each with the next position of the
// topic: see Order and acks), dropping its expired entries; the batch's
// topics in the registry (a topic's score only grows), dropping up to 1000
// expired ones; and, last, a notice per topic for watches (see Watch). On
// one Redis that is one script call per 1000 messages, the batch packed in
// one MessagePack argument (Redis's Lua reads it with cmsgpack), so that a
// batch is one command to send, run and answer; on a Cluster, whose keys of
// one batch span slots, a pipeline of an HSET and a PEXPIREAT per message
// and one index script per topic and one register script, each sent to its
// slot's node. A message lives in Redis until the earlier of its
// Message.Expiry and ExpiredAfter (the seeds' expired_after, default 3600 s)
// after the write; already expired messages are not stored, and messages
// that expired are never returned. A topic's fanout index keys expire
// together, up to a sixteenth of ExpiredAfter after their latest message:
// their expiry is set again only when a new message outlives it, not on
// every Publish.
// Publishing an ID again writes the same hash again and keeps its position.
//
// FetchOffline finds the matching topics — the filter itself when it has
// no wildcards; else the registry's topics that topic.Match accepts, read
// by name range for the literal levels before the first wildcard
// (sensor/+/temp reads sensor up to sensor0) or whole for a filter
// starting with a wildcard. A fanout fetch then reads, in one pipeline,
// the client's watermark, acks and base of each topic and the
// subscription's start, and in a second, per topic, a script in the
// topic's slot that reads the IDs above the watermark — by position
// (ZRANGE BYSCORE), or, when the IDs after the start are fewer than half
// of those above the watermark (a new subscriber on a topic with a long
// past), the IDs after the start by ID (ZRANGE BYLEX of the ID set) whose
// position is above the watermark — and the IDs the watermark passed that
// are after the start: those of the passed set (ZRANGE BYLEX) and those
// of the base, minus its kept acks (none read at all when the fetch's
// start is at or after the base's, as when the filter is the
// subscription that made them not due). It keeps the IDs after the start
// that the client has not acked, orders them and reads the messages
// FetchChunk at a time until Limit is reached.
// A fanout fetch writes nothing. A queue fetch reads the topics' indexes
// and claims each message with a script on its hash that checks, in one
// step, that it is a queue message, unclaimed, with its lease run out or
// claimed by the fetching client already (a consumer that reconnects gets
// its unacked messages again at once), not expired and recent enough for
// Since, and then records the claim (claimed_by, claim_until: a new lease)
// and returns the message.
//
// Acked runs a script on each acked message's hash that deletes a queue
// message claimed by the acking client (its ID then leaves the index);
// every other ack is a fanout ack, recorded and settled as Order and acks
// says, in three round trips: the reads (the messages' positions, the
// client's watermarks, its acks above them, its bases and its
// subscriptions), the scan of each acked topic's index from the watermark,
// and a script per topic on the client's cursor keys. The seeds' mqtt:acked:${clientid}:${topic}
// keeps the highest ID acked (never moved back). Cursor keys and the seeds'
// key get the ExpiredAfter TTL from each ack. Retain replaces the retained
// hash with a script (DEL, HSET, PEXPIREAT at Message.Expiry) and
// registers the topic; an empty payload or an expired message deletes it.
//
// Claim (persist.Claimer, a shared subscription group's messages leased
// to one member at a time) runs one script on the group's claim keys
// (hash tag {<group>}): per ID it sets the key to the owner with the
// lease as its TTL (SET PX) when the key is absent — never claimed, or
// its lease ran out and Redis dropped it — or holds the owner already (a
// renewal), and leaves it otherwise; a lease of zero or less deletes the
// keys that hold the owner. Leases run on the server's clock, and expired
// claims take no space. Batches over 1000 IDs take one script call per
// 1000, in one pipeline.
//
// Raw commands: Store.Actions compiles the seeds' "commands" actions, such
// as
//
//	acts, err := st.Actions(redisstore.Action{
//		Hook:     "client.connected",
//		Commands: []string{"SET conn:${clientid} ${clientid}"},
//	})
//
// into a persist.Store for a persist.Rule. A command is split into
// arguments once, when compiled (action.ParseCommand); each ${name} is then
// replaced inside its one argument, so a client ID such as x\r\nFLUSHALL is
// stored as data and never becomes a command. Action.Pipeline sends all
// commands of a call in one pipeline.
//
// # Order and acks
//
// A fanout ack acks its one message (persist.Store.Acked): a client that
// acked a message must still get every other one, whichever node stored
// it, whenever it became readable, whatever its ID says. A message can
// become readable after the client acked one with a later ID — published
// on another node, by a node whose clock is behind, committed late by
// group commit or an outbox — so a cursor of IDs (the highest acked ID,
// as the seeds keep it) skips it. The store keeps acks per message instead,
// and keeps them few with a watermark over positions that Redis gives in
// commit order:
//
//   - Position. The index script of a topic gives each new fanout ID the
//     next position of the topic's counter (seq), in the same script that
//     adds the IDs to the index, so positions follow the order in which
//     the scripts ran: a reader that sees position N sees every smaller
//     position that will ever exist (gaps are fine: expiry, IDs published
//     twice). Positions never fall behind the server's clock in
//     microseconds, so a counter made anew (its topic's keys expired) or
//     rolled back by a failover that lost the latest writes gives
//     positions above those given before, as long as a topic averages
//     under a million messages a second and the servers' clocks are closer
//     than a failover takes.
//   - Watermark. Per client and topic, a position W: every message at or
//     below it is acked, expired, or was due to none of the client's
//     subscriptions. Acks above W are kept one by one, by ID. A fetch reads
//     the index above W, minus the acks.
//   - Settling. After recording acks, Acked scans the topic's index from
//     W up (a script in the topic's slot): W may move to just before the
//     first message that is not expired, is due to the client and that it
//     has not acked — or to the counter when there is none. Acks at or
//     below the new W are dropped (but see the base). A message is due
//     when its ID is after S, the earliest start among the client's stored
//     subscriptions whose filter matches the topic (S is none when one has
//     History, or none matches); messages before S (history before a
//     subscription) would otherwise hold W back until they expire and make
//     every fetch read the acks since. W passes them, but remembers them: a
//     fetch by a filter without a stored subscription (no start bound), or
//     by a later subscription with History, still gets those not acked.
//   - The base. W remembers what it passes so as one range, not one entry
//     per message: the base (from, to, start) says that the messages at
//     positions in (from, to] with IDs at or before start were passed
//     unacked, except those in the kept acks. When W moves from w to w'
//     under a start S that is not none, and the base ends at w with start
//     S (or there is none: it then starts at w), the base's end becomes w'
//     — whatever W passes, so that it stays joined —, and the acks of
//     messages in the base are kept, in a set that holds those alone:
//     acked above W before it passed them (one delivered live while the
//     client subscribed, one with an older ID stored after the
//     subscription) or acked after. When the base cannot take them (S
//     changed while the cursor was kept), W keeps the IDs it passes
//     unacked one by one in the passed set, as before the base, and an ack
//     removes one from it. A cursor without a base (written by a version
//     before it) is read as before, and gets a base from its watermark on.
//   - Jumping the past. A new subscriber's first due message lies after
//     the topic's whole past: the scan would examine it all, 2000 entries
//     an ack. When the base can take what W passes and the IDs after S
//     (ZLEXCOUNT of the topic's ID set) are fewer than half of the entries
//     above W, the scan reads those IDs instead (with the client's acks of
//     messages not stored when acked), keeps those above W and orders them
//     by position: W moves to just before the first of them the client
//     has not acked, and the base covers the rest. A topic's ID set is used
//     only when it holds as many IDs as the index (a topic written by a
//     version before it lacks some); with more than 2000 IDs after S (plus
//     the acks) the scan reads by position, into the base.
//   - Stale reads are safe. The scan and the script that moves W (in the
//     client's slot) run one after the other, not in one step: another
//     node may store messages or ack meanwhile. A message not readable at
//     the scan gets a position above the counter the scan saw, so above
//     the new W; acks only add to what may be passed; and the script moves
//     W only from the watermark the scan started at (or above), never back
//     — after a scan that jumped, only while the base still ends at W with
//     the scan's start (else W waits for the next ack).
//
// Why this way: a script may touch the keys of one hash slot only on a
// Cluster, and a topic's keys and a client's keys cannot share one, so
// nothing needs both in one step. The same design fits the other stores:
// a SQL counter row updated in the message insert's transaction, a
// Cassandra conditional batch in the topic's partition, DynamoDB
// TransactWriteItems; MongoDB without transactions must treat a position
// given but not stored yet as unsettled until a timeout.
//
// Cost: Publish does a little more per topic (the counter, the expiry set)
// and PUBLISHes a notice per topic; BenchmarkPublishBatch measured the
// store's Publish of 100 messages on 10 topics at 0.93–0.98 of the
// throughput of Publish before positions on a single server, 0.85–0.87
// through Sentinel and 0.93–0.96 on the Cluster (same runs, on a loaded
// two-core machine). Acked takes three round trips where it took two; a
// fetch one more (the watermark before the index).
//
// The ID set costs Publish a ZADD per topic of a batch and holds about
// 120 bytes per message, as much as the index: in alternating runs of the
// versions with and without it on the same two-core machine, the
// store/before ratio above went from 0.91–0.95 to 0.78–0.88 on a single
// server, from 0.89–0.94 to 0.75–0.78 through Sentinel and from 0.87–0.99
// to 0.72–0.84 on the Cluster. For it, a new subscriber of a topic with a
// past pays for what came after its start, not for the past: with 50,000
// messages before the subscription (BenchmarkShared
// …/NewSubscriberAfterHistory50k, single server) an ack took 6.8–7.3 ms
// and the first fetch of 100 messages 8.3–8.5 ms, and now take about what
// they take on a topic without a past (0.1–0.3 ms and 0.8–1.4 ms); and the
// client's cursor holds one base instead of a passed entry (about 120
// bytes) per message of the past.
//
// # Watch
//
// Store is a persist.Watcher: a node hears, live, of messages stored on
// any node sharing the Redis, through Redis pub/sub. After its writes,
// Publish PUBLISHes one notice per distinct topic of the batch on
// mqtt:notify:<topic>, the node of its messages as payload ("" when they
// came from several): last in its pipeline on a single server or through
// Sentinel (so the messages are readable when it is heard), and on a
// Cluster — whose pipeline runs on several nodes at once — right after
// Publish returns, from a goroutine that merges the notices of concurrent
// Publishes. A connect or disconnect PUBLISHes the client's notice on
// mqtt:connected.
//
// Each Watch has a pub/sub connection of its own: it SUBSCRIBEs to
// mqtt:connected, to the topic's channel for each watched filter without
// wildcards, and PSUBSCRIBEs to a glob of each wildcard filter (levels
// escaped for * ? [ ] \, '+' and a trailing '#' → '*'; what the glob
// matches beyond the filter, topic.Match leaves out), counted per filter.
// Redis sends a notice only to the connections with a matching
// subscription, so a node hears of the topics its clients watch and of
// every connect, not of other traffic. Add returns when Redis confirmed
// the subscription. The watch PINGs a connection silent for 2 s; one that
// breaks, or does not answer within 2 s more, is made again with every
// subscription, and fn then hears an empty Notice (fetch everything).
// TestWatchLatency measured, from the start of a Publish through another
// store value (a client of its own) to the notice, over 200 publishes in
// three runs on a loaded two-core machine: p50 0.14–0.34 ms and p99 3–10
// ms on a single server, p50 0.20–0.30 ms and p99 1.7–7 ms through
// Sentinel, p50 0.40–0.74 ms and p99 10–40 ms on the Cluster.
//
// Cost per node, and with 100 nodes: a node holds one pub/sub connection
// per watch (persist/mochi makes one per node) and one subscription per
// distinct filter its clients have; it receives one message per notice
// of a topic it watches, and one per connect anywhere. A Publish sends one
// PUBLISH per distinct topic of its batch, whatever the number of nodes.
// Redis delivers each notice to the k nodes that watch its topic (k
// writes) and finds exact channels by hash, but matches each PUBLISH
// against every distinct pattern subscribed on the server (Redis tries
// them all): about 1 µs a pattern was measured here, so 1,000 distinct
// wildcard filters over all nodes add about 1 ms of Redis time to each
// notice (see Caveats). With 100 nodes, a message on a topic that 3 of
// them watch costs its PUBLISH and 3 deliveries, nothing on the other 97;
// a connect costs 100 deliveries. On a Cluster a PUBLISH goes to every
// Redis node over the cluster bus (classic pub/sub), and each matches it
// against the patterns of its own connections.
//
// # Cluster
//
// The seeds' keys carry no hash tags (mqtt:client:test must stay
// mqtt:client:test), and every step that must be atomic touches one hash
// slot, as one command or one Lua script: the queue claim and the queue
// ack (the message's hash), the index update of a topic's fanout messages
// (its four keys, hash tag {topic}), the settling scan (the same keys),
// the watermark's move (a client's cursor keys of a topic, hash tag
// {clientid}), a group's claims (hash tag {group}), the seeds' cursor, the retained replace (the retained
// hash); the topic registries' two sorted sets share a hash tag and change
// together in one script. Steps that touch several slots (a message hash
// and its index, a subscription's three hashes, an ack's scan and the
// watermark's move) are ordered so that a reader never acts on half of
// them: a fetch skips IDs whose hash is gone or not written yet and never
// removes them, and the watermark never passes a message it has not seen.
// Batches go in one pipeline, which go-redis splits per node and sends in
// parallel. Scripts are sent by SHA and loaded on every master when a node
// does not know them (NOSCRIPT: a new node, a restart, SCRIPT FLUSH); the
// failed call had no effect and runs again. Events are PUBLISHed through
// one node so that they arrive in order.
//
// On a single server and through Sentinel, Subscribed and Retain run in a
// MULTI/EXEC transaction; a Cluster cannot run one across hash slots, so
// there each of their keys is written on its own (see Caveats).
//
// # Errors
//
// Errors are *persist.Error values of the store ("redisstore") and
// operation: errors.Is matches persist.ErrInvalid (bad input, naming what
// was wrong, before anything is written), persist.ErrNotFound (Client),
// persist.ErrClosed (after Close) and persist.ErrUnavailable (a refused,
// lost or timed-out connection; LOADING, BUSY, TRYAGAIN, CLUSTERDOWN,
// MASTERDOWN, READONLY), and errors.As reaches go-redis's error
// (redis.Error for a server's reply, such as WRONGTYPE; redis.ErrClosed
// when the caller closed its client). Retryable: the unavailable ones; not:
// server errors such as WRONGTYPE or OOM, and a closed client. A done
// context is returned as is. The store does not retry and does not log
// (go-redis itself retries as the client's options say, and follows MOVED
// and ASK on a Cluster).
//
// # Caveats
//
//   - A wildcard fetch or retained look-up reads the registry's names in
//     the range of the filter's literal prefix (all of them for a filter
//     starting with '+' or '#') and matches them in Go: "+/temp" over
//     millions of topics is slow; "site/42/+/temp" reads site/42's topics
//     only. A filter without wildcards reads its one topic.
//   - A fetch reads a topic's index from the client's watermark up (IDs
//     only; messages are read FetchChunk at a time) and the client's acks
//     above it: a client far behind on a topic holding millions of
//     unexpired messages makes fetches of it slow.
//   - A message the client never acks (its broker dropped it, say) holds
//     the client's watermark of its topic until it expires; the client's
//     acks of that topic pile up meanwhile and every fetch of it reads
//     them.
//   - Fanout messages stored by a version of this package before positions
//     (in mqtt:topic:${topic}) are not fetched by this one: drain them
//     before upgrading, or let them expire.
//   - A client's cursor keys are per topic, up to five keys next to the
//     seeds' one: a client acking on many topics holds many keys (each
//     lives for ExpiredAfter after its last ack).
//   - A topic's ID set is trusted when it holds as many IDs as the index.
//     A version before it, still publishing to the topic during a rolling
//     upgrade, adds IDs to the index alone (the counts then differ and the
//     topic is read by position, as before); if that version also sweeps
//     expired IDs this one stored (they stay in the ID set), the counts can
//     match while the ID set lacks the older version's IDs, and a new
//     subscriber's fetch may miss those: upgrade every node that publishes
//     before relying on it, or let the older version's messages expire.
//   - Redis matches each notice against every distinct wildcard filter
//     watched on the server (about 1 µs each): nodes whose clients have
//     many distinct wildcard filters (devices/<id>/+ per device, say) make
//     every Publish cost Redis time in proportion; filters shared by many
//     clients (sensor/+/temp) count once, and filters without wildcards
//     cost nothing of the kind.
//   - A Prefix holding '{' or '}' changes the keys' hash tags: on a
//     Cluster, use one without.
//   - A subscription's start is an ID made by the subscribing node's clock:
//     a message published just after it, on a node whose clock is behind,
//     counts as before it. Queue leases use the server's clock.
//   - mqtt:node:${node} is a best-effort list: racing connects of one
//     client ID on several nodes may leave it listed on a node it left.
//   - On a Cluster, a Retain that sets and one that deletes the same topic
//     at the same moment may leave the retained hash without its registry
//     entry (a look-up of the topic itself finds it; a wildcard look-up
//     does not) until the topic is retained again.
//   - A message's MQTT 5 properties must be valid UTF-8 (they are kept as
//     JSON).
//   - go-redis logs a few events of its own (such as a Sentinel's master
//     switch) to its default logger; redis.SetLogger replaces it.
package redisstore
