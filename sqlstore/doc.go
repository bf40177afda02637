// Package sqlstore keeps an MQTT broker's state — client connection state,
// subscriptions, offline messages (queue and fanout), retained messages and
// acks — in SQL tables shaped like the seeds' (mqtt_client, mqtt_sub,
// mqtt_msg, mqtt_retain, mqtt_acked, and this package's mqtt_topic,
// mqtt_acked_msg, mqtt_claim and, on PostgreSQL, mqtt_watch), on SQLite (embedded, pure
// Go: github.com/glebarez/sqlite), PostgreSQL (pgx) or MySQL/MariaDB
// (go-sql-driver/mysql), through gorm. Several broker nodes may share one
// database: no fanout message is skipped whichever node stored it (see
// Ordering), and a Store is a persist.Watcher that tells the nodes, live,
// of the messages stored on the others (see Watch).
//
// New takes a *gorm.DB the caller built and keeps owning; Open takes a URL
// (sqlite://file.db, sqlite::memory:, postgres://…, mysql://…) and owns
// the connection it makes. Schema creation is explicit: Migrate.
//
// # Schema
//
// Migrate creates the tables (names from Options: the seeds' by default, a
// TablePrefix, or a name per table) with the seeds' columns first, in the
// seeds' order, so the seeds' own queries work and show what the seeds
// show:
//
//	select * from mqtt_client where clientid = 'test'   -- state 1/0, node, online_at, offline_at
//	select * from mqtt_sub where clientid = 'test'      -- topic, qos
//	select * from mqtt_msg where sender = 'test'        -- msgid, topic, qos, retain, payload, arrived
//	select * from mqtt_retain where topic = 'retain'    -- msgid, sender, qos, payload, arrived
//	select * from mqtt_acked where clientid = 'test'    -- topic, mid (the highest ID the client acked)
//
// Columns this package adds (all additive):
//
//	mqtt_client  username, peerhost; changed: the database's clock at the last connect or
//	             disconnect (the polling watch reads it); released: on SQLite and MySQL, the
//	             node of a disconnect that changed nothing (the client had moved on), until
//	             the next write that applies
//	mqtt_sub     no_local, retain_as_published, retain_handling, sub_id (MQTT 5 options);
//	             start_id: the fanout start (an ID; '' = from the oldest message; NULL = none)
//	mqtt_msg     mode (0 fanout, 1 queue), expiry, username, peerhost,
//	             props (MQTT 5 properties as JSON), claimed_by, claim_until (queue claims);
//	             seq: the message's position in its topic (see Ordering);
//	             PostgreSQL also gets node, which its seed table lacks
//	mqtt_retain  expiry, props, username, peerhost (and node on PostgreSQL)
//	mqtt_acked   seq: the client's watermark of the topic; base_seq, base_start: the
//	             range of messages it passed unacked (see Ordering)
//	all on MySQL where a unique key has clientid or topic: ukey, an INVISIBLE
//	             generated SHA-256 of the key (see below)
//
// Tables this package adds:
//
//	mqtt_topic      id, topic, seq (the topic's counter: the last position given), changed (the
//	                database's clock at the last Publish, for the polling watch: SQLite, MySQL), node and n
//	                (the node and the number of messages of the last Publish); one row per topic
//	                ever published to, never deleted (a counter must not start again); the row
//	                of the empty topic (no topic name is empty) counts the changes of mqtt_watch
//	mqtt_acked_msg  id, clientid, msgid, topic, acked_at, passed: a client's ack of one message
//	                above its watermark (passed 0), a message the watermark passed unacked
//	                because it was due to none of the client's subscriptions, outside the
//	                cursor's range (passed 1), or an ack of a message inside it (passed 2)
//	mqtt_claim      id, grp, msgid, claimed_by, claim_until: a shared group's message
//	                ("$share/g/f" in grp) leased to one member (see Claim; the group's
//	                position is a client of mqtt_sub and mqtt_acked named grp, see persist)
//	mqtt_watch      PostgreSQL only: id, channel, topic (a filter), beat — the filters of the
//	                nodes' watches (see Watch)
//
// Column types per dialect (limits are in bytes and checked before
// writing, see MaxTopicLen and friends):
//
//	                     SQLite    PostgreSQL             MySQL/MariaDB
//	id                   INTEGER   BIGSERIAL              BIGINT UNSIGNED AUTO_INCREMENT
//	clientid, sender,    TEXT      varchar(1024)          varchar(1024) utf8mb4, binary no-pad collation
//	 node, username, …
//	topic                TEXT      varchar(1024) "C"      varchar(1024) utf8mb4, binary no-pad collation
//	msgid, mid, start_id TEXT      varchar(64) "C"        varchar(64) utf8mb4, binary no-pad collation
//	state                INTEGER   integer                varchar(3) (as the seed)
//	qos, retain, mode, … INTEGER   integer                int
//	seq, n               INTEGER   bigint                 bigint
//	times                DATETIME  timestamp              datetime(6)
//	payload              BLOB      bytea                  longblob
//	props                TEXT      text                   longtext
//
// Times are UTC (SQLite keeps them as fixed-width text, "2006-01-02
// 15:04:05.000000", so they compare as text); arrived is Message.Time (the
// time of the write when it is zero).
//
// Indexes: a unique key on mqtt_client (clientid), mqtt_sub (clientid,
// topic), mqtt_msg (msgid) — which makes Publish idempotent —,
// mqtt_retain (topic), mqtt_acked (clientid, topic), mqtt_topic (topic),
// mqtt_acked_msg (clientid, msgid), mqtt_claim (grp, msgid) and mqtt_watch
// (channel, topic); mqtt_claim (claim_until) the deletion of claims that ran out;
// mqtt_msg (topic, msgid) serves a fetch by topic prefix in ID order,
// mqtt_msg (topic, seq) a fetch from a watermark and the watermark's move,
// mqtt_msg (expiry) DeleteExpired; mqtt_acked_msg (clientid, topic, msgid;
// MySQL: clientid, topic) the deletion of settled acks and the per-message
// probe of whether a client acked a message (one that stays a look-up of
// one row whatever the statistics say), and (acked_at) DeleteExpired's of
// stale ones;
// mqtt_topic (changed; SQLite and MySQL) and mqtt_client (changed) the
// polling watch; on MySQL mqtt_acked_msg (clientid(255), msgid) the passed
// rows after a start. On PostgreSQL and SQLite, partial indexes over the
// rows of mqtt_msg and mqtt_acked without seq (none, once migrated) let
// Migrate find them for free. PostgreSQL and SQLite name them as PostgreSQL names the seeds'
// UNIQUE constraints (mqtt_sub_clientid_topic_key, …), so on seed tables
// the existing constraints are used. MySQL keeps each unique key over
// clientid/topic as a unique index on ukey, because a key over two
// varchar(1024) utf8mb4 columns passes InnoDB's 3072-byte index limit;
// prefix indexes (clientid(255), topic(255)) serve lookups and ranges.
//
// Differences from the seeds' DDL, and why:
//
//   - payload is binary (PostgreSQL bytea, not text; MySQL longblob, not
//     blob, whose 64 KiB is too small for MQTT payloads; 1 MiB must fit);
//   - mqtt_acked.mid holds the 26-character IDs of persist.NewID (varchar),
//     not an integer;
//   - clientid and topic hold up to 1024 bytes (seeds: 64 to 1024
//     characters, 200 for most topics); MQTT allows 65535, index limits
//     do not (PostgreSQL's 2704-byte btree entries, InnoDB's 3072 bytes);
//   - MySQL strings are utf8mb4 (the seeds' utf8 cannot hold emoji) with a
//     binary, no-pad collation (utf8mb4_nopad_bin on MariaDB,
//     utf8mb4_0900_bin on MySQL 8): the default collations are case- and
//     accent-insensitive, and even utf8mb4_bin pads, so 'a' and 'a '
//     would be one key. Equality on unique keys goes through ukey, which
//     is exact whatever the collation;
//   - PostgreSQL topics and IDs use the "C" collation, so ranges and
//     ORDER BY are byte order, not the database locale's;
//   - times have microseconds (MySQL datetime(6); the seed's mqtt_retain
//     .arrived was a timestamp, which MySQL converts by session time zone).
//
// Migrate over tables made with the seeds' own DDL (and holding their
// rows) adds the missing columns, widens or converts the columns above
// (PostgreSQL text payloads with convert_to(payload, 'UTF8')), sets the
// seeds' integer mid values to NULL (they are not our IDs, and as text
// they would sort after every ID and hide messages), and adds the indexes.
// On MySQL it first drops the seed tables' indexes over columns it
// changes (mqtt_client_key, mqtt_client_idx, mqtt_sub_key, mqtt_sub_idx,
// mqtt_retain_key, mqtt_acked_key: they would pass the index length limit)
// and makes this package's instead. Existing ids stay int (SERIAL). The
// unique index on mqtt_msg.msgid fails if seed rows repeat a msgid.
//
// Over tables of an earlier version of this package (or the seeds'),
// Migrate gives the stored messages their positions: per topic in ID
// order, above the topic's counter, which moves up by as many (one
// transaction, so no Publish takes the same positions); and turns each
// cursor (mqtt_acked.mid, the highest acked ID: every message up to it
// counted as acked) into the watermark of the last message of its topic at
// or below mid, so that a client gets what it got before. It does the same
// for rows that a node of an earlier version writes after the upgrade,
// when Migrate runs again (see Caveats).
//
// Migrate is idempotent and serialized across processes (an advisory lock
// on PostgreSQL, GET_LOCK on MySQL); on PostgreSQL and SQLite it runs in
// one transaction, so it changes all or nothing.
//
// # Semantics
//
// Connected upserts mqtt_client by clientid (state 1/0; a zero
// OnlineAt/OfflineAt keeps the stored time). A disconnect is one upsert
// whose update applies only where the row is not online on another node
// (ON CONFLICT … DO UPDATE … WHERE on PostgreSQL and SQLite, CASE WHEN in
// each assignment of ON DUPLICATE KEY UPDATE on MySQL), so a late
// disconnect from a node the client has left changes nothing (on SQLite
// and MySQL it writes only its node into released, for the polling
// watches). A connect or disconnect also sets mqtt_client.changed to the
// database's clock and, on PostgreSQL, notifies every watch in the same
// statement (see Watch).
// Subscribed upserts and deletes mqtt_sub rows in one transaction; a new
// row's start_id is persist.NewID() (or an empty string with History) and
// an update keeps it. Publish writes a batch in one transaction: the
// counters of its topics (mqtt_topic, in topic byte order), then the
// messages with one multi-row INSERT (prepared text per batch size;
// Options.BatchRows and BatchBytes split large batches into several
// INSERTs), each row taking its position from its topic's counter; on
// PostgreSQL a batch of one INSERT is one statement whose arguments are an
// array per column, the same text for every batch (see Ordering). It
// ignores IDs already stored (ON CONFLICT DO NOTHING; ON DUPLICATE KEY
// UPDATE id = id on MySQL — not INSERT IGNORE, which would hide other
// errors) and skips expired messages; a deadlock is retried (twice).
// Retain upserts mqtt_retain by topic; an empty payload deletes. Acked,
// in one READ COMMITTED transaction (SQLite: its one writer), deletes the
// acked queue messages claimed by the client and records each other ack,
// moving the client's watermarks (see Ordering); mqtt_acked.mid keeps the
// greatest acked ID (GREATEST, MAX on SQLite), never back.
//
// FetchOffline narrows candidates in SQL — equality for a filter without
// wildcards; else an index range over the literal levels before the first
// wildcard (plus the parent topic for "a/#", which matches "a") and a LIKE
// pattern for the rest, with '%', '_' and the escape character '!'
// escaped — and then matches exactly with topic.Match, paging on when Go
// drops rows and a Limit is set. Fanout reads in ID order, after the
// client's watermark of each topic (mqtt_acked.seq, a join; a filter
// without wildcards reads from the (topic, seq) index), leaving out the
// messages it acked (mqtt_acked_msg), adding those its watermark passed
// unacked, and after the start of its subscription to exactly the
// filter. Queue claims: on PostgreSQL and MySQL, SELECT … FOR UPDATE SKIP
// LOCKED in a READ COMMITTED transaction, then UPDATE claimed_by and
// claim_until (the lease) of the rows it returns; on SQLite, which has one
// writer, the store serializes its writes and claims with an UPDATE …
// RETURNING that checks again that each row is still unclaimed (or the
// client's own), so two processes on one file never hand out a message to
// two clients. Candidates are the rows unclaimed
// (claim_until NULL), with the lease run out, or claimed by the fetching
// client already (claimed_by = the client, bound as a parameter): a
// consumer that reconnects gets its unacked messages again at once, with a
// new lease. A message whose lease ran out is handed out again; an ack
// deletes it only when the acking client holds the claim.
//
// Values from clients are always bound parameters; only the validated
// table names are formatted into SQL.
//
// # Ordering
//
// Fanout acks are per message (persist.Store's Acked): acking B says
// nothing of A, whatever their IDs, whenever and on whichever node A is
// stored. A cursor by message ID — the seeds' mqtt_acked.mid, which this
// package read as "every message up to mid is acked" — skips for good a
// message that becomes readable after the client acked one with a later ID:
// published on another node, committed late by group commit or retries,
// replayed from an asynchronous outbox, or stamped by a clock that is
// behind. Keeping every ack instead would grow without bound. So the acks
// are kept above a watermark that moves only over settled positions:
//
//   - Every message gets seq, its position in its topic, from the topic's
//     counter row, updated in the transaction that inserts the message: the
//     counter's row lock orders the transactions that write one topic, so
//     positions are in commit order — a reader that sees the message at
//     position N sees every message of the topic below N that will ever
//     exist, and a message it does not see yet will get a position above
//     the counter it sees. Gaps are fine (an ID stored already, expiry).
//     PostgreSQL writes a batch in one statement: INSERT INTO mqtt_topic …
//     ON CONFLICT DO UPDATE SET seq = seq + excluded.seq RETURNING topic,
//     seq in a CTE, and the INSERT INTO mqtt_msg … SELECT that takes seq =
//     the returned counter less the message's place from the end of its
//     topic's messages in the batch, the rows read with unnest from one
//     array argument per column (with the notifications and the watch
//     version, see Watch); SQLite runs the counter upsert (RETURNING the
//     counters) and the INSERT with the positions in one transaction, MySQL
//     the same with the counters read back by a SELECT (or, for a batch of
//     one topic, from the upsert's LAST_INSERT_ID). Topics are written in
//     byte order, so writers lock counters alike.
//   - Per client and topic, the watermark W (mqtt_acked.seq): every message
//     at or below it is settled — acked, expired, a queue message, or
//     passed (below). Above it, one row of mqtt_acked_msg per acked message
//     (also for a message not stored yet: an asynchronous pipeline may write
//     the ack first; the message, when stored, is not returned).
//   - A fanout fetch returns the messages above W not acked, in ID order.
//   - Acked reads the acked messages' positions and, per topic, in one
//     statement (one snapshot), the first positions above W of stored,
//     unexpired fanout messages the client has not acked by a row; the
//     first of them that this call does not ack either stops W, which moves
//     to one below it, or to the topic's counter when there is none — never
//     back. Only the acks above the new W become rows (in order, acks
//     write none), and the rows at or below it are deleted. The Acked calls
//     of one client and topic run one after the other (the cursor row is
//     written first).
//   - Messages never due to the client must not pin W (the history of a
//     topic before the client subscribed to it would keep W at 0 and every
//     ack as a row): messages with IDs up to the earliest start of the
//     client's stored subscriptions whose filter matches the topic (none
//     when one has History or none matches) do not stop W. Those W passes
//     unacked are kept as one range on the cursor: the messages at
//     positions up to base_seq with IDs up to base_start, but those the
//     client has a row of. While W moves with the same start and the range
//     reaches W, the range grows with W (one column, whatever the topic's
//     past: a new subscriber's first ack costs what a fresh topic's does),
//     and the client's acks of messages in it — delivered live while it
//     subscribed, an older ID stored after its start — stay as rows with
//     passed 2 (also those above W that W passes). Once the start changed
//     (the subscription removed and made again with the cursor kept), W
//     passes such messages as rows with passed 1 instead (at most 5,000 per
//     call and topic; a long gap is passed over several calls); an ack of
//     one deletes its row. A fetch whose filter has an earlier start — no
//     stored subscription, or one with History — returns them still; a
//     fetch through the subscription that made them not due reads none
//     (an index range of IDs from its start to base_start, and one on
//     (clientid, msgid) after its start). The first Acked of a client new
//     to a topic reads its candidates from the start by ID, not from
//     position 0.
//
// In normal operation W follows the acks closely and a client has a few ack
// rows per topic (none when it acks in order); a message the client never
// acks (delivered, then the client left for good) holds W and the acks
// above it until the message expires. This works for the stores still to come as for Redis (INCRBY in
// the script that indexes the message): a counter updated atomically with
// the write (Cassandra: a conditional batch in the topic's partition;
// DynamoDB: TransactWriteItems). Where the counter cannot be updated with
// the write (MongoDB without transactions) a position allocated but not
// stored yet must count as unsettled until a timeout.
//
// What it costs, measured in one run with the version before positions,
// this one and the plain multi-row INSERT of the same rows interleaved
// (medians of 300 each, loopback, a loaded 2-core machine, several runs):
// Publish of a batch of 100 messages over 10 topics takes 1.2–1.7× as long
// on PostgreSQL (store / plain INSERT throughput 0.8–1.0 → 0.5–0.7),
// 1.7–2.3× on MariaDB (0.8–1.1 → 0.45–0.57: five round trips instead of
// one) and 1.4–1.6× on SQLite (0.94–1.09 → 0.62–0.74); a batch of one
// message 1.5–1.9×, 2.0–2.7× and 2.0–2.4×. Group commit still writes a
// batch in one transaction. Acked of 10 messages of a topic, in order, by a
// subscribed client takes 2.0–2.3× (PostgreSQL), 3.1–3.4× (MariaDB) and
// 2.3–2.6× (SQLite) as long as the cursor upsert did.
//
// # Watch
//
// Store.Watch (persist.Watcher) tells a node, live, of the messages stored
// through any store on the database for the filters it watches, and of the
// clients that connect on any node.
//
// PostgreSQL: LISTEN/NOTIFY. A watch holds one connection of the pool for
// its life, listening on a channel of its own (mqtt_w_<16 hex digits>) and
// on the clients' channel (the client table's name and "_notice", so
// mqtt_client_notice). Its filters are rows of mqtt_watch (channel, topic =
// the filter, beat). Each store keeps a cached topic.Index of that table
// and, in its publish statement, calls pg_notify once per (channel, topic)
// pair of the batch whose filter matches — delivered at commit, to the
// nodes that watch the topic only; the payload is the topic and the
// publishing node, as a JSON array. The cache follows the table by a
// version, the seq of mqtt_topic's row of the empty topic, which Watch.Add
// moves up first in its transaction (so Adds commit in version order and
// their rows' ids follow it): the publish statement returns the version it
// saw, and a store whose cache is older loads the rows added since (id
// above the highest it has) and sends the notifications it owed, just
// after the commit. Then Add waits for the publishes in flight (LOCK TABLE
// mqtt_topic IN SHARE MODE, at most 2 s): a publish that did not see the
// Add has committed when Add returns, so the fetch that follows Add reads
// its messages. The cache is loaded whole every 30 s (dropping removed
// filters, whose notifications the watch drops until then). A watch marks
// its rows every 15 s and deletes the rows not marked for a minute (dead
// watches'); when its connection breaks it takes another, listens again,
// adds its rows again and calls fn with an empty Notice. Connected of an
// online client sends a JSON {client, node, at} on the clients' channel in
// its upsert statement.
//
// SQLite and MySQL: polling. Every Options.PollInterval (50 ms) a watch
// runs one query: the rows of mqtt_topic and of mqtt_client whose
// changed column (the database's clock, set by the
// Publish and connect upserts when they write the row; indexed; on
// PostgreSQL the counter's update leaves it alone) is after the
// database's clock at the previous poll less a second, for the commits
// that came after their changed (a Publish whose commit came later than
// half a second after its counter update sets changed again). It calls fn
// for the topics whose counter moved and that match its filters, with the
// publishing node when one batch alone moved the counter, or when batches
// of one node that this store value wrote took every position of the move
// (it remembers the positions its own Publish calls took: a node's own
// messages moving a busy topic's counter several times between two polls
// would else make its subscribers of the topic read the store on every
// poll, although it delivered them live), and for each
// connect and disconnect (a released row tells the disconnect of the node
// the client left: persist.Notice.Offline).
//
// Measured on loopback (TestWatchLatency: a notice on node A after each of
// 200 publishes on node B, each waiting for the notice; two runs, the
// second on a machine with a load average of 9 on 2 cores): PostgreSQL
// p50 18–98 µs, p99 0.4–23 ms (the notification arrives about when
// Publish returns); SQLite p50 48–49 ms, p99 51–76 ms and MariaDB p50
// 48 ms, p99 53–106 ms at the default interval: each publish came just
// after a poll, so the p50 is a whole interval (half of it on average).
//
// Cost per node. PostgreSQL: one held connection per watch; one pg_notify
// per publish and topic for each node whose filter matches it (none for the
// others: TestNotifyOnlyMatching, with 1, 2 and 4 nodes, counts 100
// notifications on the matching node's channel and none on the others');
// per Add of a filter new to the node, two short transactions and a wait for
// the publishes in flight; per publishing store, a SELECT of the rows added
// after a change and of the whole table every 30 s; per watch, an UPDATE
// and a DELETE every 15 s. With 100 nodes: 100 listening connections
// (PostgreSQL's default max_connections is 100: raise it, or use a pooler
// that leaves the listening sessions alone), a mqtt_watch of every node's
// distinct filters held in each publishing node's cache (about 350 bytes a
// filter in the index), 100 × 2 heartbeat statements per 15 s, and a
// message costs as many notifications as nodes watch its topic: 1 for a
// device topic one node serves, 100 for a topic every node subscribes to.
// PostgreSQL serializes the commits of notifying transactions (one queue),
// which bounds the rate of publishes that notify. Polling: one indexed
// query per interval per node (20 a second at 50 ms) that reads every topic
// and client that changed in the last ~1.05 s, whoever watches it; the
// database's load grows with nodes × write rate: 100 nodes are 2,000
// queries a second, each reading the topics written in the last second. For
// many nodes use PostgreSQL or a longer PollInterval.
//
// # Raw SQL actions
//
// Besides the seeds' tables, a store runs the seeds' raw SQL actions
// ("action": {"sql": [...]}) on its database: Store.Actions compiles them,
// and the result is a persist.Store for a persist.Rule that handles only
// the hooks named (client.connected, client.disconnected,
// session.subscribed, session.unsubscribed, message.publish,
// message.retain, message.acked):
//
//	acts, err := st.Actions(sqlstore.Action{
//		Hook: "client.connected",
//		SQL:  []string{"insert into conn(clientid) values(${clientid})"},
//	})
//
// Each ${name} is a bound parameter ($1 on PostgreSQL, ? elsewhere), never
// text of the statement, so a client ID such as a'; DROP TABLE mqtt_msg; --
// is stored as data. An unknown ${name} fails when the action is compiled;
// action.VarNames lists the names of each hook. All statements of one call
// (a whole Publish batch) run in one transaction.
//
// # Errors
//
// Errors are *persist.Error values of the store ("sqlstore(postgres)") and
// operation: errors.Is matches persist.ErrInvalid (bad input, naming what
// and where, before anything is written), persist.ErrNotFound (Client),
// persist.ErrClosed (after Close) and persist.ErrUnavailable (connection
// refused or lost), and errors.As reaches the driver's error
// (*pgconn.PgError, *mysql.MySQLError, the SQLite driver's *sqlite.Error).
// Retryable: connection failures, deadlocks, serialization failures, lock
// wait timeouts and a busy SQLite database; not: constraint, syntax and
// data errors. A done context is returned as is. The store does not retry
// and does not log.
//
// # Caveats
//
//   - Limits (bytes): topic names and filters MaxTopicLen (1024), client
//     IDs MaxClientIDLen (1024), node, username and peer host MaxStringLen
//     (1024), message IDs MaxIDLen (64). Strings must be UTF-8 without
//     U+0000 (MQTT's rule; PostgreSQL text cannot hold U+0000).
//   - MySQL needs MariaDB 10.6 / MySQL 8.0.23 or later (SKIP LOCKED,
//     INVISIBLE columns). With a collation that pads (no no-pad binary
//     collation on the server) exactness still holds for unique keys and
//     lookups (through ukey and checks in Go).
//   - Fanout messages leave only by expiry: expired rows are never
//     returned, but they are deleted only by DeleteExpired (run it now and
//     then; there is an index on expiry). DeleteExpired also deletes the
//     rows of mqtt_acked_msg written over an hour ago whose message is not
//     stored (an ack whose message never came: QoS 0, another store) or is
//     at or below the watermark (left by a race): a message stored more
//     than an hour after its ack comes to the client once more.
//   - FetchOffline returns messages in ID order, and the ID order across
//     broker nodes is as good as their clocks; none is skipped for it.
//   - A fetch through a filter without a stored subscription returns the
//     messages the watermark passed because they were due to none of the
//     client's subscriptions; the watermark Migrate makes of an old cursor
//     skips what the cursor skipped, as before.
//   - mqtt_topic keeps one row per topic ever published to.
//   - Upgrading: messages that a node of a version before positions writes
//     after Migrate have no position and are not fetched in fanout mode
//     until Migrate runs again; stop those nodes first, or migrate again
//     once they are gone.
//   - The polling watch misses (the message comes at the next fetch) a
//     Publish whose commit came over a second after its counter update when
//     the update of changed that such a slow Publish makes after its commit
//     is as slow (it waits for the counter rows too).
//   - PostgreSQL: a watch holds a pool connection (set the pool's
//     MaxOpenConns with that in mind); Watch needs the pgx stdlib driver
//     (gorm's postgres driver uses it); Watch.Add waits up to 2 s for the
//     publishes in flight, and after that a publish in flight may be heard
//     of late.
//   - SQLite via New: the caller's DSN should set a busy timeout (Open sets
//     10s, WAL and immediate transactions).
//   - A :memory: SQLite database has one connection: a store on it runs
//     one statement at a time.
package sqlstore
