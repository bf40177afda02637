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
//	GET mqtt:acked:test:<topic>        the ID of the last message client test acked on topic
//	                                   (its fanout cursor)
//	HGETALL mqtt:retain:<topic>        as a message hash, for the retained message of topic
//
// Keys this package adds:
//
//	mqtt:subopt:<clientid>   hash filter → MQTT 5 options "no_local retain_as_published
//	                         retain_handling identifier" (absent when all are zero)
//	mqtt:substart:<clientid> hash filter → the fanout start of the subscription: the ID made
//	                         when it was first stored ("" with Subscription.History)
//	mqtt:topic:<topic>       sorted set of the IDs of topic's fanout messages
//	mqtt:queue:<topic>       the same for queue messages
//	mqtt:topics:{mqtt:fanout}      registries of the topics that have fanout messages,
//	mqtt:topics:{mqtt:queue}       queue messages and retained messages, for wildcard
//	mqtt:topics:{mqtt:retain}      filters: sorted sets of topic names
//	mqtt:topics:{mqtt:fanout}:lex  the same names scored 0, for ranges by name (ZRANGE BYLEX);
//	…:lex                          the hash tag keeps each pair in one Cluster slot
//
// In every sorted set but the :lex ones the score is when the entry
// expires, in Unix milliseconds (+inf: never), so expired entries are
// skipped by a range query and removed by score.
//
// The seeds index a topic's messages in the sorted set mqtt:msg:${topic}.
// That name shares its namespace with the message hashes mqtt:msg:${msgid}:
// a message published to a topic spelled like another message's ID would
// collide with it (WRONGTYPE). The index is therefore mqtt:topic:${topic}
// (and mqtt:queue:${topic}), and its scores are expiry times rather than the
// seeds' constant 1, which is what lets the index prune itself.
//
// The seeds' mqtt:acked:${clientid}:${topic} is ambiguous when a client ID
// holds ':' (client "a:b" on topic "c" and client "a" on topic "b:c" would
// share a key). A client ID holding ':' or '%' is therefore written there
// with those two bytes percent-encoded (%3A, %25); every other client ID —
// and every client ID in every other key — is written as it is.
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
// from the node it was on. Subscribed deletes the removed
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
// Publish sends a batch in one pipeline: per message an HSET of its hash
// and a PEXPIREAT; per topic one script call that adds the IDs to the
// topic's index, drops its expired entries and sets its TTL to that of its
// latest entry; one script call that adds the batch's topics to the
// registry (a topic's score only grows) and drops up to 1000 expired ones. A message lives in
// Redis until the earlier of its Message.Expiry and ExpiredAfter (the
// seeds' expired_after, default 3600 s) after the write; already expired
// messages are not stored, and messages that expired are never returned.
// Publishing an ID again writes the same hash again.
//
// FetchOffline reads, in one pipeline, the index of every matching topic
// — the filter itself when it has no wildcards; else the registry's topics
// that topic.Match accepts, read by name range for the literal levels
// before the first wildcard (sensor/+/temp reads sensor up to sensor0) or
// whole for a filter starting with a wildcard —, for fanout with the
// client's cursors and the subscription's start, orders the IDs and reads the messages FetchChunk
// at a time until Limit is reached. A fanout fetch writes nothing. A queue
// fetch claims each message with a script on its hash that checks, in one
// step, that it is a queue message, unclaimed, with its lease run out or
// claimed by the fetching client already (a consumer that reconnects gets
// its unacked messages again at once), not expired and recent enough for
// Since, and then records the claim (claimed_by, claim_until: a new lease)
// and returns the message. Acked runs a script on
// each acked message's hash that deletes a queue message claimed by the
// acking client (its ID then leaves the index); every other ack moves the
// client's cursor of the ack's topic with a script that never moves it
// back (cursors get the ExpiredAfter TTL from each ack). Retain replaces
// the retained hash with a script (DEL, HSET, PEXPIREAT at Message.Expiry)
// and registers the topic; an empty payload or an expired message deletes
// it.
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
// # Cluster
//
// The seeds' keys carry no hash tags (mqtt:client:test must stay
// mqtt:client:test), so a store never needs two keys in one hash slot:
// every step that must be atomic touches one key, as one command or one Lua
// script — the queue claim and the queue ack (the message's hash), the
// cursor advance (the cursor), the index update (the topic's index), the
// retained replace (the retained hash); the topic registries' two sorted
// sets share a hash tag and change together in one script. Steps that
// touch several keys (a
// message hash and its index, a subscription's three hashes) are ordered so
// that a reader never acts on half of them: a fetch skips IDs whose hash
// is gone or not written yet and never removes them. Batches go in one
// pipeline, which go-redis splits per node and sends in parallel. Scripts
// are sent by SHA and loaded on every master when a node does not know
// them (NOSCRIPT: a new node, a restart, SCRIPT FLUSH); the failed call
// had no effect and runs again. Events are PUBLISHed through one node so
// that they arrive in order.
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
//   - A topic's index is read whole for a fetch (IDs only; messages are
//     read FetchChunk at a time): a topic holding millions of unexpired
//     messages makes fetches of it slow.
//   - mqtt:node:${node} is a best-effort list: racing connects of one
//     client ID on several nodes may leave it listed on a node it left.
//   - On a Cluster, a Retain that sets and one that deletes the same topic
//     at the same moment may leave the retained hash without its registry
//     entry (a look-up of the topic itself finds it; a wildcard look-up
//     does not) until the topic is retained again.
//   - The ID order across broker nodes is as good as their clocks; leases
//     use the server's clock.
//   - A cursor is per client and topic name; an ack moves it past every
//     older message of that topic, acked or not. A cursor key lives for
//     ExpiredAfter after the last ack, as long as the messages it covers.
//   - A message's MQTT 5 properties must be valid UTF-8 (they are kept as
//     JSON).
//   - go-redis logs a few events of its own (such as a Sentinel's master
//     switch) to its default logger; redis.SetLogger replaces it.
package redisstore
