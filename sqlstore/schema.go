package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
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

// migrate runs the migration: on PostgreSQL and SQLite, whose DDL is
// transactional, in one transaction (PostgreSQL's under an advisory
// transaction lock, released whatever happens); on MySQL, whose DDL commits
// on its own, under a named lock of the session.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if s.d.name() != "mysql" {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if s.d.name() == "postgres" {
			// Any constant will do; it only has to be the same for every store.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7306247071805291)"); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if err := s.migrateTables(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('mqttpersist.sqlstore.migrate', 60)").Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return errors.New("could not take the migration lock within 60s")
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('mqttpersist.sqlstore.migrate')"); err != nil {
			// Do not pool a session that may still hold the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if err := s.mysqlCollation(ctx, conn); err != nil {
		return err
	}
	return s.migrateTables(ctx, conn)
}

func (s *Store) migrateTables(ctx context.Context, conn migrator) error {
	for _, spec := range s.specs() {
		if err := s.migrateTable(ctx, conn, spec); err != nil {
			return fmt.Errorf("table %s: %w", spec.name, err)
		}
	}
	return nil
}

// mysqlCollation picks the binary, no-pad collation the server has.
func (s *Store) mysqlCollation(ctx context.Context, conn migrator) error {
	md := s.d.(*mysqlDialect)
	rows, err := conn.QueryContext(ctx, "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')")
	if err != nil {
		return err
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		found[n] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	switch {
	case found["utf8mb4_nopad_bin"]:
		md.collation = "utf8mb4_nopad_bin"
	case found["utf8mb4_0900_bin"]:
		md.collation = "utf8mb4_0900_bin"
	default:
		md.collation = "utf8mb4_bin"
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
	mysql := d.name() == "mysql"
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
		if mysql && spec.hash != nil {
			b.WriteString(",\n  " + hashCol + " " + d.colType(kHash) + " AS (" + hashExpr(spec.hash) + ") STORED INVISIBLE")
		}
		b.WriteString("\n)")
		if mysql {
			b.WriteString(" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + d.(*mysqlDialect).collation)
		}
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
			if d.name() == "sqlite" || c.kind == kSerial || columnOK(d, c.kind, info) {
				continue
			}
			altered[c.name] = true
			numeric := isNumeric(info.dataType)
			switch {
			case mysql:
				if numeric && c.kind != kState && c.kind != kInt && c.kind != kMode {
					// The seeds' integer message IDs mean nothing next to ours.
					if err := exec("UPDATE " + q + " SET " + c.name + " = NULL"); err != nil {
						return err
					}
				}
				nn := ""
				if c.notNull {
					nn = " NOT NULL"
				}
				alters = append(alters, "MODIFY COLUMN "+c.name+" "+d.colType(c.kind)+nn)
			default: // postgres
				using := ""
				switch {
				case c.kind == kBlob && !strings.Contains(info.dataType, "bytea"):
					using = " USING convert_to(" + c.name + ", 'UTF8')"
				case numeric:
					using = " USING NULL"
				}
				alters = append(alters, "ALTER COLUMN "+c.name+" TYPE "+d.colType(c.kind)+using)
			}
		}
		if mysql && len(altered) > 0 {
			// Indexes over columns that grow (the seeds' unique keys on
			// clientid and topic) would pass MySQL's index length limit:
			// drop them; this package's own are made again below.
			idx, err := mysqlIndexes(ctx, conn, spec.name)
			if err != nil {
				return err
			}
			for name, cols := range idx {
				if name == "PRIMARY" {
					continue
				}
				for _, c := range cols {
					if altered[strings.ToLower(c)] {
						if err := exec("DROP INDEX " + d.quote(name) + " ON " + q); err != nil {
							return err
						}
						break
					}
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
		if _, ok := have[hashCol]; mysql && spec.hash != nil && !ok {
			if err := exec("ALTER TABLE " + q + " ADD COLUMN " + hashCol + " " + d.colType(kHash) + " AS (" + hashExpr(spec.hash) + ") STORED INVISIBLE"); err != nil {
				return err
			}
		}
	}
	// Indexes.
	var existing map[string][]string
	if mysql {
		if existing, err = mysqlIndexes(ctx, conn, spec.name); err != nil {
			return err
		}
	}
	for _, ix := range spec.idx {
		name := spec.name + ix.suffix
		cols := ix.cols
		if mysql {
			cols = ix.mysql
			if ix.unique && spec.hash != nil {
				// MySQL keeps unique keys over clientid/topic as a hash.
				cols, name = hashCol, spec.name+"_ukey"
			}
			if cols == "" {
				continue
			}
			if _, ok := existing[name]; ok {
				continue
			}
		} else if cols == "" {
			continue
		}
		kind := "INDEX"
		if ix.unique {
			kind = "UNIQUE INDEX"
		}
		ine := " IF NOT EXISTS"
		if mysql {
			ine = ""
		}
		if err := exec("CREATE " + kind + ine + " " + d.quote(name) + " ON " + q + " (" + cols + ")"); err != nil {
			return err
		}
	}
	return nil
}

// columnOK reports whether an existing column can stay as it is.
func columnOK(d dialect, k colKind, c colInfo) bool {
	str := func(n int64) bool {
		return c.dataType == "text" || (c.dataType == "varchar" || c.dataType == "character varying") && (c.length == 0 || c.length >= n)
	}
	switch d.name() {
	case "postgres":
		switch k {
		case kClientID, kString:
			return str(strLen)
		case kTopic:
			return str(strLen) && c.collation == "C"
		case kMsgID:
			return str(msgIDLen) && c.collation == "C"
		case kState, kInt, kMode:
			return isNumeric(c.dataType)
		case kTime:
			return strings.HasPrefix(c.dataType, "timestamp")
		case kBlob:
			return c.dataType == "bytea"
		case kText:
			return c.dataType == "text"
		}
	case "mysql":
		coll := d.(*mysqlDialect).collation
		bin := c.charset == "utf8mb4" && c.collation == coll
		switch k {
		case kClientID, kTopic, kString:
			return c.dataType == "varchar" && c.length >= strLen && bin
		case kMsgID:
			return c.dataType == "varchar" && c.length >= msgIDLen && bin
		case kState:
			return c.dataType == "varchar" || isNumeric(c.dataType)
		case kInt, kMode:
			return isNumeric(c.dataType)
		case kTime:
			return c.dataType == "datetime" && c.precision == 6
		case kBlob:
			return c.dataType == "longblob"
		case kText:
			return c.dataType == "longtext"
		}
	}
	return true
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
	var query string
	switch s.d.name() {
	case "sqlite":
		query = "SELECT name, lower(type), 0, '', '', 0 FROM pragma_table_info(?)"
	case "postgres":
		query = `SELECT column_name, data_type, COALESCE(character_maximum_length, 0), COALESCE(collation_name, ''), '', 0
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`
	default:
		query = `SELECT COLUMN_NAME, LOWER(DATA_TYPE), COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(COLLATION_NAME, ''),
			COALESCE(CHARACTER_SET_NAME, ''), COALESCE(DATETIME_PRECISION, 0)
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`
	}
	rows, err := conn.QueryContext(ctx, query, table)
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

// mysqlIndexes returns the indexes of table with their columns.
func mysqlIndexes(ctx context.Context, conn migrator, table string) (map[string][]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var name, col string
		if err := rows.Scan(&name, &col); err != nil {
			return nil, err
		}
		out[name] = append(out[name], col)
	}
	return out, rows.Err()
}
