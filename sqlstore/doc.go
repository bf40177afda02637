// Package sqlstore keeps an MQTT broker's state — client connection state,
// subscriptions, offline messages (queue and fanout), retained messages and
// acks — in SQL tables shaped like the seeds' (mqtt_client, mqtt_sub,
// mqtt_msg, mqtt_retain, mqtt_acked), on SQLite (embedded, pure Go:
// github.com/glebarez/sqlite), PostgreSQL (pgx) or MySQL/MariaDB
// (go-sql-driver/mysql), through gorm.
//
// New takes a *gorm.DB the caller built and keeps owning; Open takes a URL
// (sqlite://file.db, sqlite::memory:, postgres://…, mysql://…) and owns
// the connection it makes. Schema creation is explicit: Migrate.
//
// # Schema
//
// Migrate creates the five tables (names from Options: the seeds' by
// default, a TablePrefix, or a name per table) with the seeds' columns
// first, in the seeds' order, so the seeds' own queries work and show what
// the seeds show:
//
//	select * from mqtt_client where clientid = 'test'   -- state 1/0, node, online_at, offline_at
//	select * from mqtt_sub where clientid = 'test'      -- topic, qos
//	select * from mqtt_msg where sender = 'test'        -- msgid, topic, qos, retain, payload, arrived
//	select * from mqtt_retain where topic = 'retain'    -- msgid, sender, qos, payload, arrived
//	select * from mqtt_acked where clientid = 'test'    -- topic, mid (the client's cursor)
//
// Columns this package adds (all additive):
//
//	mqtt_client  username, peerhost
//	mqtt_sub     no_local, retain_as_published, retain_handling, sub_id (MQTT 5 options);
//	             start_id: the fanout start (an ID; '' = from the oldest message; NULL = none)
//	mqtt_msg     mode (0 fanout, 1 queue), expiry, username, peerhost,
//	             props (MQTT 5 properties as JSON), claimed_by, claim_until (queue claims);
//	             PostgreSQL also gets node, which its seed table lacks
//	mqtt_retain  expiry, props, username, peerhost (and node on PostgreSQL)
//	all on MySQL where a unique key has clientid or topic: ukey, an INVISIBLE
//	             generated SHA-256 of the key (see below)
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
// mqtt_retain (topic) and mqtt_acked (clientid, topic); mqtt_msg (topic,
// msgid) serves a fetch by topic or topic prefix in ID order, and mqtt_msg
// (expiry). PostgreSQL and SQLite name them as PostgreSQL names the seeds'
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
// disconnect from a node the client has left changes nothing. Subscribed upserts and deletes
// mqtt_sub rows in one transaction; a new row's start_id is persist.NewID()
// (or an empty string with History) and an update keeps it. Publish writes a batch with
// one multi-row INSERT (prepared text per batch size; Options.BatchRows
// and BatchBytes split large batches into several INSERTs in one
// transaction), ignoring IDs already stored (ON CONFLICT DO NOTHING; ON
// DUPLICATE KEY UPDATE id = id on MySQL — not INSERT IGNORE, which would
// hide other errors) and skipping expired messages. Retain upserts
// mqtt_retain by topic; an empty payload deletes. Acked, in one
// transaction, deletes the acked queue messages claimed by the client and
// moves the client's mqtt_acked cursor of each other ack's topic to the
// greatest acked ID (GREATEST, MAX on SQLite), never back.
//
// FetchOffline narrows candidates in SQL — equality for a filter without
// wildcards; else an index range over the literal levels before the first
// wildcard (plus the parent topic for "a/#", which matches "a") and a LIKE
// pattern for the rest, with '%', '_' and the escape character '!'
// escaped — and then matches exactly with topic.Match, paging on when Go
// drops rows and a Limit is set. Fanout reads in ID order, after the
// client's cursor for each topic (a join on mqtt_acked) and after the
// start of its subscription to exactly the filter. Queue claims: on
// PostgreSQL and MySQL, SELECT … FOR UPDATE SKIP LOCKED in a READ
// COMMITTED transaction, then UPDATE claimed_by and claim_until (the lease)
// of the rows it returns; on SQLite, which has one writer, the store
// serializes its writes and claims with an UPDATE … RETURNING that checks
// again that each row is still unclaimed (or the client's own), so two
// processes on one file never hand out a message to two clients. Candidates are the rows unclaimed
// (claim_until NULL), with the lease run out, or claimed by the fetching
// client already (claimed_by = the client, bound as a parameter): a
// consumer that reconnects gets its unacked messages again at once, with a
// new lease. A message whose lease ran out is handed out again; an ack
// deletes it only when the acking client holds the claim.
//
// Values from clients are always bound parameters; only the validated
// table names are formatted into SQL.
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
//     then; there is an index on expiry).
//   - A cursor is per client and topic name; an ack moves it past every
//     older message of that topic, acked or not.
//   - The ID order across broker nodes is as good as their clocks.
//   - SQLite via New: the caller's DSN should set a busy timeout (Open sets
//     10s, WAL and immediate transactions).
//   - A :memory: SQLite database has one connection: a store on it runs
//     one statement at a time.
package sqlstore
