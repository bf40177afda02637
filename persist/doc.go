// Package persist holds the core of mqttpersist: the stored types (Message,
// Client, Subscription, Ack), the Store interface every database backend
// implements, its small companion interfaces, errors, sortable message IDs,
// the Router that sends a broker's events to stores by rules, and the
// Pipeline that decides how writes reach each store. Raw actions (${name}
// templates of SQL, CQL and Redis commands) are in package persist/action.
//
// # Stores
//
// A Store has six verbs: Connected, Subscribed, Publish, Acked, Retain and
// FetchOffline. Lookups and lifecycle are companion interfaces found by type
// assertion (ClientLookup, SubscriptionLookup, RetainLookup, Pinger,
// Closer, FetchPlanner), as in database/sql/driver; each says what the
// Router and the broker adapter do for a store that lacks it. A store that
// handles only some events (a time-series writer handles only publishes)
// embeds Unsupported and declares its events with an Events method
// (EventSupporter).
//
// # Schema names
//
// The data model follows a set of reference backends: the persistence
// backends of the EMQ X broker (Redis, MySQL, PostgreSQL, MongoDB,
// Cassandra, DynamoDB, InfluxDB, OpenTSDB, Timescale). The stores keep
// their names and layout by default, so the queries written for those
// backends, such as select * from mqtt_client where clientid = 'test' or
// HGETALL mqtt:retain:<topic>, work on the data stored here. The docs of
// this module use their names:
//
//	mqtt_client  table or collection of client connection states (Client):
//	             clientid, state (1 online, 0 offline), node, online_at,
//	             offline_at; Redis hash mqtt:client:<clientid>, and
//	             mqtt:node:<node> for the clients online on a node
//	mqtt_sub     subscriptions (Subscription): clientid, topic (the filter),
//	             qos; Redis hash mqtt:sub:<clientid>, filter → QoS
//	mqtt_msg     messages for offline delivery (Message): msgid, topic,
//	             sender (Message.From), node, qos, retain, payload, arrived
//	             (Message.Time); Redis hash mqtt:msg:<msgid>
//	mqtt_retain  retained messages, one per topic: topic, msgid, sender,
//	             node, qos, payload, arrived; Redis hash mqtt:retain:<topic>
//	mqtt_acked   acks: per client and topic, the ID of the last message
//	             acked (its fanout cursor); Redis mqtt:acked:<clientid>:<topic>
//
// Cassandra keeps them in keyspace mqtt (mqtt.client, mqtt.sub, …). Each
// store's package doc lists the exact names it uses and the ones it adds;
// the names are configurable (a prefix, or a name per table).
//
// Rules run on the reference backends' hooks client.connected,
// client.disconnected, session.subscribed, session.unsubscribed,
// message.publish and message.acked, and on message.retain and
// message.fetch of this module (see Event). The backends' functions map to
// Store verbs and companions: on_client_connected and
// on_client_disconnected to Connected, on_message_publish to Publish,
// on_message_retain and on_retain_delete to Retain, on_message_acked to
// Acked, on_message_fetch to FetchOffline, on_subscribe_lookup to
// SubscriptionLookup and on_retain_lookup to RetainLookup. A fetch's
// offline_opts (max_returned_count, time_range) are Fetch's Limit and
// Since, and the expired_after setting is Rule.Expiry. Their one-to-one
// messages are Queue, their many-to-many ("pubsub") messages Fanout, and
// their raw "sql", "cql" and "commands" actions are in package
// persist/action.
//
// # Router
//
// A Rule is one hook line of the reference backends (see Schema names):
// events, a topic filter, a store and options (mode queue or fanout, QoS 0
// too, a default expiry, FetchOffline defaults, History). NewRouter checks the rules up front; the Router is
// itself a Store, so routers compose. For each call it makes at most one
// call per distinct store, calling different stores concurrently, and it
// counts matched, written and failed items per rule (Router.Stats).
//
// Messages, acks and retained messages are matched by topic name with a
// topic.Index; subscriptions and fetches, which carry filters, go to the
// rules whose filters overlap theirs. A queue fetch claims what it returns
// (a consumer's own unacked claims are returned again, with a new lease,
// so a consumer that reconnects need not wait for its lease to run out),
// so the Router never drops a claimed message (see Router.FetchOffline).
//
// # Pipeline
//
// The Router writes every store through a Pipeline: the ones given as a
// rule's Store, or a durable one it makes. A Durable pipeline returns from
// Publish once the store has the messages; concurrent calls are
// group-committed (one store call carries everything queued while the
// previous one ran, with no timer, so a lone publisher is never delayed),
// and retryable errors are retried within Timeout. An Async pipeline
// returns once the write (Publish, Retain, Acked) is in its outbox — a
// write-ahead log on disk (github.com/tidwall/wal, chosen over a file format
// of our own) that survives a crash of the process and is replayed in order
// at the next start — and one worker per store writes it in batches
// (MaxBatch, MaxBatchBytes, Interval), retrying retryable errors
// (IsRetryable) with backoff and jitter for as long as the store is down.
// Permanent errors are counted, logged with the store, topic and client,
// and handed to DeadLetter when set. OutboxBytes bounds the outbox;
// Overflow says whether a full one blocks writers or drops the oldest
// records (counted). Close drains within Drain. Stores take a message ID
// twice as once, and acks and retained messages replayed in order end
// where they were, so a replay after a crash writes nothing twice.
// PipelineStats and Router.Stats feed persist/metrics.
//
// Connected and Subscribed are passed through in both modes. In async
// mode, FetchOffline first waits for the records queued before it, so a
// client that reconnects sees what was published before; while the store is
// down it fails as the store does.
//
// # Errors
//
// Errors match the sentinels ErrClosed, ErrNotFound, ErrInvalid,
// ErrUnsupported and ErrUnavailable with errors.Is and unwrap to the
// driver's error with errors.As; IsRetryable says whether trying again may
// help. Bad input is an ErrInvalid error naming what was wrong. The Router
// wraps a store's error in a RuleError naming the rules the failed call
// served.
//
// # Caveats
//
// Router.Close does not close the stores: the caller owns them. Publish and
// Retain set a missing ID and Time on the caller's message, and change
// nothing else on it.
package persist
