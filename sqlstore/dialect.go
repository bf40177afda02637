package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"strconv"
	"strings"
	"time"
)

// dialect is what differs between the SQL databases: placeholders, quoting,
// upserts, GREATEST, row locking, column types, how keys are compared and
// how tables are migrated. SQL is written once with '?' placeholders and
// rebound per dialect when it is built (never per call on the hot path).
// Code outside the dialects' own methods does not ask which database it is.
type dialect interface {
	// name is "sqlite", "postgres" or "mysql".
	name() string
	// quote quotes a validated identifier.
	quote(ident string) string
	// rebind turns '?' placeholders into the dialect's ($1, $2, ... for
	// PostgreSQL).
	rebind(query string) string
	// onConflict returns the clause that makes an INSERT an upsert on the
	// unique key cols, with set as the assignments ("" for do nothing).
	onConflict(cols []string, set string) string
	// onConflictIf is onConflict whose update applies only where cond
	// holds: a WHERE on the update (PostgreSQL, SQLite) or, where an
	// upsert has none (MySQL), each assignment keeping the stored value
	// unless cond holds. set returns the assignments, each one guarded by
	// its argument when that is not "".
	onConflictIf(cols []string, set func(guard string) string, cond string) string
	// online is the literal that the state column of an online client
	// equals (state 1; a string on MySQL, whose state column is
	// varchar(3) as the seeds').
	online() string
	// oneWriter reports whether the database takes one writer at a time
	// (SQLite): the store then serializes its own writes, and claims
	// queue messages without row locks (see skipLocked).
	oneWriter() bool
	// excluded names the value an upsert tried to insert into col.
	excluded(col string) string
	// current names the stored value of col of table in an upsert.
	current(table, col string) string
	// greatest is the larger of two strings.
	greatest(a, b string) string
	// filterOnly is col in a condition the planner must not pick an
	// index range by (SQLite: +col; the others weigh every bound).
	filterOnly(col string) string
	// skipLocked is the row-locking suffix of a claim SELECT, "" where
	// the database has none (SQLite claims optimistically).
	skipLocked() string
	// timeArg turns t into the value bound for a time column.
	timeArg(t time.Time) any
	// hashKeys reports whether unique keys over clientid/topic are kept as a
	// SHA-256 of the key (MySQL, whose index length limit is too small for
	// long keys); equality on those keys then compares the hash.
	hashKeys() bool
	// colType is the column type of kind k for a new column.
	colType(k colKind) string
	// now is the database's clock as a stored time (UTC), read when the
	// expression is evaluated, after the row locks of its statement: the
	// changed columns that the polling watch reads.
	now() string
	// listens reports whether the database notifies listening sessions
	// (PostgreSQL's LISTEN/NOTIFY): Watch then listens instead of
	// polling, and Publish runs as one statement with data-modifying
	// CTEs (see publish.go).
	listens() bool
	// returning reports whether an upsert can return what it wrote
	// (RETURNING: PostgreSQL, SQLite 3.35).
	returning() bool
	// lastInsertID is expr, also made the statement's last insert ID
	// where there is no RETURNING (MySQL's LAST_INSERT_ID(expr)).
	lastInsertID(expr string) string
	// updateFrom is an UPDATE of table setting set from the rows of from
	// (a derived table with its alias) where cond joins them.
	updateFrom(table, set, from, cond string) string
	// typed is a placeholder for a value of kind k that the database
	// cannot type from its context (in a VALUES list that is not an
	// INSERT's own): "CAST(? AS bytea)" on PostgreSQL.
	typed(k colKind) string

	// The rest is the schema side, used by Migrate: migrate_lock.go,
	// columns.go and indexes.go hold each dialect's methods.

	// migrateOn runs fn, the migration, on conn, serialized across
	// processes: in one transaction where DDL is transactional (SQLite;
	// PostgreSQL under an advisory transaction lock), else under a named
	// lock of the session (MySQL, which also picks its collation first).
	migrateOn(ctx context.Context, conn *sql.Conn, fn func(migrator) error) error
	// tableOptions is what follows the column list of a CREATE TABLE.
	tableOptions() string
	// columnsQuery lists the columns of the table named by its one
	// parameter, as columns scans them.
	columnsQuery() string
	// columnOK reports whether an existing column, described by c, can
	// stay as it is to hold kind k.
	columnOK(k colKind, c colInfo) bool
	// retype returns what makes the existing column c, described by info,
	// of the quoted table hold c.kind: statements to run at once (before
	// any ALTER) and the ALTER TABLE clause ("" for none).
	retype(table string, c column, info colInfo) (before []string, alter string)
	// unindex returns the statements that drop the indexes of table over
	// the columns about to be altered (lower-case names).
	unindex(ctx context.Context, conn migrator, table string, altered map[string]bool) ([]string, error)
	// createIndexes returns the statements that create the indexes of
	// spec that the table lacks.
	createIndexes(ctx context.Context, conn migrator, spec tableSpec) ([]string, error)
}

// dialectOf returns the dialect of a gorm dialector name, or nil for one
// this package does not speak.
func dialectOf(gormName string) dialect {
	switch gormName {
	case "sqlite":
		return sqliteDialect{}
	case "postgres":
		return postgresDialect{}
	case "mysql":
		return &mysqlDialect{}
	}
	return nil
}

// colKind is the logical type of a column.
type colKind int

const (
	kSerial   colKind = iota // autoincrement primary key
	kClientID                // client IDs (exact, binary comparison)
	kTopic                   // topic names and filters (exact, byte order)
	kMsgID                   // message IDs (exact, byte order)
	kString                  // other strings (node, username, peer host)
	kState                   // mqtt_client.state (1 online, 0 offline)
	kInt                     // small integers
	kMode                    // message mode, NOT NULL DEFAULT 0 (fanout)
	kTime                    // UTC instants
	kBlob                    // payloads, up to 1 MiB and more
	kText                    // JSON (MQTT 5 properties)
	kHash                    // MySQL only: SHA-256 of a unique key, generated
	kSeq                     // positions and counters (64-bit)
)

// Lengths of string columns in characters; the stores check the same
// numbers in bytes, so a value that passes always fits.
const (
	strLen   = MaxTopicLen // also MaxClientIDLen and MaxStringLen
	msgIDLen = MaxIDLen
)

// sqlTime is how SQLite and MySQL get times: UTC wall clock with
// microseconds, fixed width so that SQLite compares it as text.
const sqlTime = "2006-01-02 15:04:05.000000"

// rebindDollar numbers '?' placeholders as $1, $2, ...
func rebindDollar(q string) string {
	n := strings.Count(q, "?")
	if n == 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + n*4)
	i := 0
	for _, c := range []byte(q) {
		if c == '?' {
			i++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(i))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// keyHash is the SHA-256 of a unique key as MySQL's generated hash columns
// compute it: UNHEX(SHA2(CONCAT_WS(CHAR(0), parts...), 256)).
func keyHash(parts ...string) []byte {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// std is what SQLite and PostgreSQL say alike: standard quoting, ON
// CONFLICT upserts (whose update may have a WHERE), keys compared as they
// are, a numeric state column, and (indexes.go, migrate_lock.go) no table
// options and CREATE INDEX IF NOT EXISTS.
type std struct{}

func (std) quote(s string) string          { return `"` + s + `"` }
func (std) excluded(col string) string     { return "excluded." + col }
func (d std) current(t, col string) string { return d.quote(t) + "." + col }
func (std) filterOnly(col string) string   { return col }
func (std) hashKeys() bool                 { return false }
func (std) online() string                 { return "1" }
func (std) onConflict(cols []string, set string) string {
	c := " ON CONFLICT (" + strings.Join(cols, ", ") + ")"
	if set == "" {
		return c + " DO NOTHING"
	}
	return c + " DO UPDATE SET " + set
}

func (std) returning() bool                 { return true }
func (std) lastInsertID(expr string) string { return expr }

func (std) updateFrom(table, set, from, cond string) string {
	return "UPDATE " + table + " SET " + set + " FROM " + from + " WHERE " + cond
}

// onConflictIf: an update with a WHERE leaves the row alone when the
// condition is false.
func (d std) onConflictIf(cols []string, set func(string) string, cond string) string {
	return d.onConflict(cols, set("")) + " WHERE " + cond
}

// sqliteDialect is SQLite through the pure-Go driver.
type sqliteDialect struct{ std }

func (sqliteDialect) name() string                 { return "sqlite" }
func (sqliteDialect) rebind(q string) string       { return q }
func (sqliteDialect) greatest(a, b string) string  { return "MAX(" + a + ", " + b + ")" }
func (sqliteDialect) filterOnly(col string) string { return "+" + col }
func (sqliteDialect) skipLocked() string           { return "" }
func (sqliteDialect) timeArg(t time.Time) any      { return t.UTC().Format(sqlTime) }
func (sqliteDialect) oneWriter() bool              { return true }
func (sqliteDialect) listens() bool                { return false }
func (sqliteDialect) typed(colKind) string         { return "?" }

// now: 'now' is the same within one statement, which takes the write lock
// before it runs; fixed width like timeArg's.
func (sqliteDialect) now() string {
	return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
}
func (sqliteDialect) colType(k colKind) string {
	switch k {
	case kSerial:
		return "INTEGER PRIMARY KEY"
	case kState, kInt, kSeq:
		return "INTEGER"
	case kMode:
		return "INTEGER NOT NULL DEFAULT 0"
	case kTime:
		return "DATETIME"
	case kBlob:
		return "BLOB"
	default:
		return "TEXT"
	}
}

// postgresDialect is PostgreSQL through pgx.
type postgresDialect struct{ std }

func (postgresDialect) name() string                { return "postgres" }
func (postgresDialect) rebind(q string) string      { return rebindDollar(q) }
func (postgresDialect) greatest(a, b string) string { return "GREATEST(" + a + ", " + b + ")" }
func (postgresDialect) skipLocked() string          { return " FOR UPDATE SKIP LOCKED" }

// timeArg: pgx writes a time.Time into a timestamp column by its wall clock,
// so it gets the UTC one.
func (postgresDialect) timeArg(t time.Time) any { return t.UTC() }
func (postgresDialect) oneWriter() bool         { return false }
func (postgresDialect) listens() bool           { return true }

// now: clock_timestamp(), not now() (the transaction's start).
func (postgresDialect) now() string { return "(clock_timestamp() AT TIME ZONE 'UTC')" }

func (postgresDialect) typed(k colKind) string { return "CAST(? AS " + pgType(k) + ")" }

// pgType is the type of a PostgreSQL placeholder of kind k.
func pgType(k colKind) string {
	switch k {
	case kState, kInt, kMode:
		return "integer"
	case kSeq:
		return "bigint"
	case kTime:
		return "timestamp"
	case kBlob:
		return "bytea"
	case kText:
		return "text"
	}
	return "varchar"
}

func (postgresDialect) colType(k colKind) string {
	switch k {
	case kSerial:
		return "BIGSERIAL PRIMARY KEY"
	case kClientID, kString:
		return "varchar(" + strconv.Itoa(strLen) + ")"
	case kTopic:
		return `varchar(` + strconv.Itoa(strLen) + `) COLLATE "C"`
	case kMsgID:
		return `varchar(` + strconv.Itoa(msgIDLen) + `) COLLATE "C"`
	case kState, kInt:
		return "integer"
	case kSeq:
		return "bigint"
	case kMode:
		return "integer NOT NULL DEFAULT 0"
	case kTime:
		return "timestamp"
	case kBlob:
		return "bytea"
	default:
		return "text"
	}
}

// mysqlDialect is MySQL 8 or MariaDB (10.6 and later) through
// go-sql-driver/mysql.
type mysqlDialect struct {
	// collation is the binary, no-pad collation of string columns
	// (utf8mb4_nopad_bin on MariaDB, utf8mb4_0900_bin on MySQL 8), or
	// utf8mb4_bin where neither exists. Set by Migrate.
	collation string
}

func (*mysqlDialect) name() string               { return "mysql" }
func (*mysqlDialect) quote(s string) string      { return "`" + s + "`" }
func (*mysqlDialect) rebind(q string) string     { return q }
func (*mysqlDialect) excluded(col string) string { return "VALUES(" + col + ")" }
func (*mysqlDialect) current(_, col string) string {
	return col
}
func (*mysqlDialect) filterOnly(col string) string { return col }
func (*mysqlDialect) greatest(a, b string) string  { return "GREATEST(" + a + ", " + b + ")" }
func (*mysqlDialect) skipLocked() string           { return " FOR UPDATE SKIP LOCKED" }

// timeArg: a string, so the server stores the UTC wall clock whatever the
// connection's loc and time_zone are.
func (*mysqlDialect) timeArg(t time.Time) any { return t.UTC().Format(sqlTime) }
func (*mysqlDialect) hashKeys() bool          { return true }
func (*mysqlDialect) online() string          { return "'1'" }
func (*mysqlDialect) oneWriter() bool         { return false }
func (*mysqlDialect) listens() bool           { return false }
func (*mysqlDialect) typed(colKind) string    { return "?" }

func (*mysqlDialect) returning() bool { return false }

func (*mysqlDialect) lastInsertID(expr string) string { return "LAST_INSERT_ID(" + expr + ")" }

func (*mysqlDialect) updateFrom(table, set, from, cond string) string {
	return "UPDATE " + table + " JOIN " + from + " ON " + cond + " SET " + set
}

// now: UTC_TIMESTAMP(6) is the statement's start, which may be long
// before the row lock the statement waited for; SYSDATE(6) is the time of
// evaluation but in the session's time zone. Their difference from NOW(6)
// (the start in that zone) moves the start to the evaluation.
func (*mysqlDialect) now() string {
	return "(UTC_TIMESTAMP(6) + INTERVAL TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) MICROSECOND)"
}

// onConflict: MySQL upserts on whichever unique key clashes; "id = id" is
// the do-nothing update (INSERT IGNORE would also hide other errors).
func (*mysqlDialect) onConflict(_ []string, set string) string {
	if set == "" {
		set = "id = id"
	}
	return " ON DUPLICATE KEY UPDATE " + set
}

// onConflictIf: ON DUPLICATE KEY UPDATE has no WHERE, so every assignment
// is guarded by cond. MySQL evaluates the assignments left to right, each
// reading the columns assigned before it: cond must read the same for all
// of them (set orders them so).
func (d *mysqlDialect) onConflictIf(cols []string, set func(string) string, cond string) string {
	return d.onConflict(cols, set(cond))
}

func (d *mysqlDialect) colType(k colKind) string {
	coll := d.collation
	if coll == "" {
		coll = "utf8mb4_bin"
	}
	str := func(n int) string {
		return "varchar(" + strconv.Itoa(n) + ") CHARACTER SET utf8mb4 COLLATE " + coll
	}
	switch k {
	case kSerial:
		return "BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY"
	case kClientID, kTopic, kString:
		return str(strLen)
	case kMsgID:
		return str(msgIDLen)
	case kState:
		return "varchar(3)"
	case kInt:
		return "int"
	case kSeq:
		return "bigint"
	case kMode:
		return "int NOT NULL DEFAULT 0"
	case kTime:
		return "datetime(6)"
	case kBlob:
		return "longblob"
	case kText:
		return "longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
	case kHash:
		return "binary(32)"
	}
	return "text"
}
