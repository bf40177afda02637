package sqlstore

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"time"
)

// dialect is what differs between the SQL databases: placeholders, quoting,
// upserts, GREATEST, row locking, column types and how keys are compared.
// SQL is written once with '?' placeholders and rebound per dialect when it
// is built (never per call on the hot path).
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
	// excluded names the value an upsert tried to insert into col.
	excluded(col string) string
	// current names the stored value of col of table in an upsert.
	current(table, col string) string
	// greatest is the larger of two strings.
	greatest(a, b string) string
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

// sqliteDialect is SQLite through the pure-Go driver.
type sqliteDialect struct{}

func (sqliteDialect) name() string               { return "sqlite" }
func (sqliteDialect) quote(s string) string      { return `"` + s + `"` }
func (sqliteDialect) rebind(q string) string     { return q }
func (sqliteDialect) excluded(col string) string { return "excluded." + col }
func (d sqliteDialect) current(t, col string) string {
	return d.quote(t) + "." + col
}
func (sqliteDialect) greatest(a, b string) string { return "MAX(" + a + ", " + b + ")" }
func (sqliteDialect) skipLocked() string          { return "" }
func (sqliteDialect) timeArg(t time.Time) any     { return t.UTC().Format(sqlTime) }
func (sqliteDialect) hashKeys() bool              { return false }
func (sqliteDialect) onConflict(cols []string, set string) string {
	return onConflictStd(cols, set)
}
func (sqliteDialect) colType(k colKind) string {
	switch k {
	case kSerial:
		return "INTEGER PRIMARY KEY"
	case kState, kInt:
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

func onConflictStd(cols []string, set string) string {
	c := " ON CONFLICT (" + strings.Join(cols, ", ") + ")"
	if set == "" {
		return c + " DO NOTHING"
	}
	return c + " DO UPDATE SET " + set
}

// postgresDialect is PostgreSQL through pgx.
type postgresDialect struct{}

func (postgresDialect) name() string               { return "postgres" }
func (postgresDialect) quote(s string) string      { return `"` + s + `"` }
func (postgresDialect) rebind(q string) string     { return rebindDollar(q) }
func (postgresDialect) excluded(col string) string { return "excluded." + col }
func (d postgresDialect) current(t, col string) string {
	return d.quote(t) + "." + col
}
func (postgresDialect) greatest(a, b string) string { return "GREATEST(" + a + ", " + b + ")" }
func (postgresDialect) skipLocked() string          { return " FOR UPDATE SKIP LOCKED" }

// timeArg: pgx writes a time.Time into a timestamp column by its wall clock,
// so it gets the UTC one.
func (postgresDialect) timeArg(t time.Time) any { return t.UTC() }
func (postgresDialect) hashKeys() bool          { return false }
func (postgresDialect) onConflict(cols []string, set string) string {
	return onConflictStd(cols, set)
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
func (*mysqlDialect) greatest(a, b string) string { return "GREATEST(" + a + ", " + b + ")" }
func (*mysqlDialect) skipLocked() string          { return " FOR UPDATE SKIP LOCKED" }

// timeArg: a string, so the server stores the UTC wall clock whatever the
// connection's loc and time_zone are.
func (*mysqlDialect) timeArg(t time.Time) any { return t.UTC().Format(sqlTime) }
func (*mysqlDialect) hashKeys() bool          { return true }

// onConflict: MySQL upserts on whichever unique key clashes; "id = id" is
// the do-nothing update (INSERT IGNORE would also hide other errors).
func (*mysqlDialect) onConflict(_ []string, set string) string {
	if set == "" {
		set = "id = id"
	}
	return " ON DUPLICATE KEY UPDATE " + set
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
