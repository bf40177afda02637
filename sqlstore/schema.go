package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// column is one column of a table as this package creates it.
type column struct {
	name    string
	kind    colKind
	notNull bool // only for new tables (the seeds' NOT NULL columns)
}

// index is one index; its name is the table name and suffix.
type index struct {
	suffix string
	unique bool
	cols   string // PostgreSQL and SQLite
	mysql  string // MySQL; "" means none
}

// tableSpec describes one table.
type tableSpec struct {
	name string
	cols []column
	// hash lists the columns of the unique key that MySQL keeps as a
	// generated SHA-256 column "ukey" (nil: none).
	hash []string
	idx  []index
}

// hashCol is the name of MySQL's generated key hash column.
const hashCol = "ukey"

// specs returns the tables of the store.
func (s *Store) specs() []tableSpec {
	t := s.t
	return []tableSpec{
		{
			name: t.client,
			cols: []column{
				{"id", kSerial, false},
				{"clientid", kClientID, false},
				{"state", kState, false},
				{"node", kString, false},
				{"online_at", kTime, false},
				{"offline_at", kTime, false},
				{"created", kTime, false},
				{"username", kString, false},
				{"peerhost", kString, false},
			},
			hash: []string{"clientid"},
			idx: []index{
				{suffix: "_clientid_key", unique: true, cols: "clientid"},
				{suffix: "_clientid_idx", mysql: "clientid(255)"},
			},
		},
		{
			name: t.sub,
			cols: []column{
				{"id", kSerial, false},
				{"clientid", kClientID, false},
				{"topic", kTopic, false},
				{"qos", kInt, false},
				{"created", kTime, false},
				{"no_local", kInt, false},
				{"retain_as_published", kInt, false},
				{"retain_handling", kInt, false},
				{"sub_id", kInt, false},
				{"start_id", kMsgID, false},
			},
			hash: []string{"clientid", "topic"},
			idx: []index{
				{suffix: "_clientid_topic_key", unique: true, cols: "clientid, topic"},
				{suffix: "_clientid_idx", mysql: "clientid(255)"},
			},
		},
		{
			name: t.msg,
			cols: []column{
				{"id", kSerial, false},
				{"msgid", kMsgID, false},
				{"topic", kTopic, true},
				{"sender", kClientID, false},
				{"node", kString, false},
				{"qos", kInt, true},
				{"retain", kInt, false},
				{"payload", kBlob, false},
				{"arrived", kTime, true},
				{"mode", kMode, false},
				{"expiry", kTime, false},
				{"username", kString, false},
				{"peerhost", kString, false},
				{"props", kText, false},
				{"claimed_by", kClientID, false},
				{"claim_until", kTime, false},
			},
			idx: []index{
				{suffix: "_msgid_key", unique: true, cols: "msgid", mysql: "msgid"},
				{suffix: "_topic_idx", cols: "topic, msgid", mysql: "topic(255), msgid"},
				{suffix: "_expiry_idx", cols: "expiry", mysql: "expiry"},
			},
		},
		{
			name: t.retain,
			cols: []column{
				{"id", kSerial, false},
				{"topic", kTopic, false},
				{"msgid", kMsgID, false},
				{"sender", kClientID, false},
				{"node", kString, false},
				{"qos", kInt, false},
				{"payload", kBlob, false},
				{"arrived", kTime, false},
				{"expiry", kTime, false},
				{"props", kText, false},
				{"username", kString, false},
				{"peerhost", kString, false},
			},
			hash: []string{"topic"},
			idx: []index{
				{suffix: "_topic_key", unique: true, cols: "topic"},
				{suffix: "_topic_idx", mysql: "topic(255)"},
			},
		},
		{
			name: t.acked,
			cols: []column{
				{"id", kSerial, false},
				{"clientid", kClientID, false},
				{"topic", kTopic, false},
				{"mid", kMsgID, false},
				{"created", kTime, false},
			},
			hash: []string{"clientid", "topic"},
			idx: []index{
				{suffix: "_clientid_topic_key", unique: true, cols: "clientid, topic"},
			},
		},
	}
}

// hashExpr is MySQL's expression for the key hash of cols.
func hashExpr(cols []string) string {
	if len(cols) == 1 {
		return "UNHEX(SHA2(" + cols[0] + ", 256))"
	}
	return "UNHEX(SHA2(CONCAT_WS(CHAR(0), " + strings.Join(cols, ", ") + "), 256))"
}

// colInfo is an existing column as the database describes it.
type colInfo struct {
	dataType  string // lower case: "character varying", "varchar", "bytea", ...
	length    int64  // character length of strings, 0 if none
	collation string
	charset   string
	precision int64 // fractional seconds of MySQL datetimes
}

// Migrate creates or completes the tables and indexes the store needs (also
// over the seeds' own tables), idempotently and serialized across processes;
// see the package doc's Schema.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.kit.Enter(ctx, "Migrate"); err != nil {
		return err
	}
	s.migMu.Lock()
	defer s.migMu.Unlock()
	unlock := s.lockWrites()
	defer unlock()
	return s.kit.Fail(ctx, "Migrate", s.migrate(ctx))
}

// migrator is the connection or transaction Migrate works on.
type migrator interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrate runs the migration on a connection of its own, as the dialect
// serializes it (see dialect.migrateOn).
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return s.d.migrateOn(ctx, conn, func(m migrator) error { return s.migrateTables(ctx, m) })
}

func (s *Store) migrateTables(ctx context.Context, conn migrator) error {
	for _, spec := range s.specs() {
		if err := s.migrateTable(ctx, conn, spec); err != nil {
			return fmt.Errorf("table %s: %w", spec.name, err)
		}
	}
	return nil
}

func (s *Store) migrateTable(ctx context.Context, conn migrator, spec tableSpec) error {
	d := s.d
	q := d.quote(spec.name)
	have, err := s.columns(ctx, conn, spec.name)
	if err != nil {
		return err
	}
	exec := func(query string) error {
		if _, err := conn.ExecContext(ctx, query); err != nil {
			return fmt.Errorf("%s: %w", query, err)
		}
		return nil
	}
	hash := d.hashKeys() && spec.hash != nil
	if len(have) == 0 {
		var b strings.Builder
		b.WriteString("CREATE TABLE IF NOT EXISTS " + q + " (\n")
		for i, c := range spec.cols {
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString("  " + c.name + " " + d.colType(c.kind))
			if c.notNull {
				b.WriteString(" NOT NULL")
			}
		}
		if hash {
			b.WriteString(",\n  " + hashCol + " " + d.colType(kHash) + " AS (" + hashExpr(spec.hash) + ") STORED INVISIBLE")
		}
		b.WriteString("\n)" + d.tableOptions())
		if err := exec(b.String()); err != nil {
			return err
		}
	} else {
		var alters, adds []string
		altered := map[string]bool{}
		for _, c := range spec.cols {
			info, ok := have[c.name]
			if !ok {
				adds = append(adds, c.name+" "+d.colType(c.kind))
				continue
			}
			if c.kind == kSerial || d.columnOK(c.kind, info) {
				continue
			}
			altered[c.name] = true
			before, alter := d.retype(q, c, info)
			for _, b := range before {
				if err := exec(b); err != nil {
					return err
				}
			}
			if alter != "" {
				alters = append(alters, alter)
			}
		}
		if len(altered) > 0 {
			drops, err := d.unindex(ctx, conn, spec.name, altered)
			if err != nil {
				return err
			}
			for _, drop := range drops {
				if err := exec(drop); err != nil {
					return err
				}
			}
		}
		for _, a := range alters {
			if err := exec("ALTER TABLE " + q + " " + a); err != nil {
				return err
			}
		}
		for _, a := range adds {
			if err := exec("ALTER TABLE " + q + " ADD COLUMN " + a); err != nil {
				return err
			}
		}
		if _, ok := have[hashCol]; hash && !ok {
			if err := exec("ALTER TABLE " + q + " ADD COLUMN " + hashCol + " " + d.colType(kHash) + " AS (" + hashExpr(spec.hash) + ") STORED INVISIBLE"); err != nil {
				return err
			}
		}
	}
	creates, err := d.createIndexes(ctx, conn, spec)
	if err != nil {
		return err
	}
	for _, c := range creates {
		if err := exec(c); err != nil {
			return err
		}
	}
	return nil
}

// textOK reports whether the existing column c is text, or a varchar of
// at least n characters (or unbounded).
func textOK(c colInfo, n int64) bool {
	return c.dataType == "text" || (c.dataType == "varchar" || c.dataType == "character varying") && (c.length == 0 || c.length >= n)
}

func isNumeric(t string) bool {
	switch t {
	case "integer", "smallint", "bigint", "int", "tinyint", "mediumint":
		return true
	}
	return false
}

// columns returns the existing columns of table by lower-case name; none
// if the table does not exist.
func (s *Store) columns(ctx context.Context, conn migrator, table string) (map[string]colInfo, error) {
	rows, err := conn.QueryContext(ctx, s.d.columnsQuery(), table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]colInfo{}
	for rows.Next() {
		var name string
		var c colInfo
		if err := rows.Scan(&name, &c.dataType, &c.length, &c.collation, &c.charset, &c.precision); err != nil {
			return nil, err
		}
		out[strings.ToLower(name)] = c
	}
	return out, rows.Err()
}
