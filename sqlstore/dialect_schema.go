package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
)

// This file is the schema side of the dialects: how each one serializes a
// migration, describes and alters existing columns, and creates indexes.

// migrateInTx runs fn in one transaction of conn, after the statements of
// lock (which take a transaction lock), committing when fn returns nil.
func migrateInTx(ctx context.Context, conn *sql.Conn, fn func(migrator) error, lock ...string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, l := range lock {
		if _, err := tx.ExecContext(ctx, l); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// createIndexesStd returns the CREATE INDEX IF NOT EXISTS statements of
// spec's indexes (PostgreSQL and SQLite).
func createIndexesStd(d dialect, spec tableSpec) []string {
	var out []string
	for _, ix := range spec.idx {
		if ix.cols == "" {
			continue
		}
		out = append(out, "CREATE "+indexKind(ix)+" IF NOT EXISTS "+d.quote(spec.name+ix.suffix)+" ON "+d.quote(spec.name)+" ("+ix.cols+")")
	}
	return out
}

func indexKind(ix index) string {
	if ix.unique {
		return "UNIQUE INDEX"
	}
	return "INDEX"
}

// SQLite: DDL is transactional and the database has one writer; a
// column takes any value, so no column is ever altered.

func (sqliteDialect) migrateOn(ctx context.Context, conn *sql.Conn, fn func(migrator) error) error {
	return migrateInTx(ctx, conn, fn)
}
func (sqliteDialect) tableOptions() string { return "" }
func (sqliteDialect) columnsQuery() string {
	return "SELECT name, lower(type), 0, '', '', 0 FROM pragma_table_info(?)"
}
func (sqliteDialect) columnOK(colKind, colInfo) bool                    { return true }
func (sqliteDialect) retype(string, column, colInfo) ([]string, string) { return nil, "" }
func (sqliteDialect) unindex(context.Context, migrator, string, map[string]bool) ([]string, error) {
	return nil, nil
}
func (d sqliteDialect) createIndexes(_ context.Context, _ migrator, spec tableSpec) ([]string, error) {
	return createIndexesStd(d, spec), nil
}

// PostgreSQL: DDL is transactional; migrations take an advisory
// transaction lock, released whatever happens.

func (postgresDialect) migrateOn(ctx context.Context, conn *sql.Conn, fn func(migrator) error) error {
	// Any constant will do; it only has to be the same for every store.
	return migrateInTx(ctx, conn, fn, "SELECT pg_advisory_xact_lock(7306247071805291)")
}
func (postgresDialect) tableOptions() string { return "" }
func (postgresDialect) columnsQuery() string {
	return `SELECT column_name, data_type, COALESCE(character_maximum_length, 0), COALESCE(collation_name, ''), '', 0
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`
}

func (postgresDialect) columnOK(k colKind, c colInfo) bool {
	switch k {
	case kClientID, kString:
		return textOK(c, strLen)
	case kTopic:
		return textOK(c, strLen) && c.collation == "C"
	case kMsgID:
		return textOK(c, msgIDLen) && c.collation == "C"
	case kState, kInt, kMode:
		return isNumeric(c.dataType)
	case kTime:
		return strings.HasPrefix(c.dataType, "timestamp")
	case kBlob:
		return c.dataType == "bytea"
	case kText:
		return c.dataType == "text"
	}
	return true
}

// retype: text becomes bytea by its UTF-8; a number (the seeds' integer
// message IDs) becomes NULL.
func (d postgresDialect) retype(_ string, c column, info colInfo) ([]string, string) {
	using := ""
	switch {
	case c.kind == kBlob && !strings.Contains(info.dataType, "bytea"):
		using = " USING convert_to(" + c.name + ", 'UTF8')"
	case isNumeric(info.dataType):
		using = " USING NULL"
	}
	return nil, "ALTER COLUMN " + c.name + " TYPE " + d.colType(c.kind) + using
}
func (postgresDialect) unindex(context.Context, migrator, string, map[string]bool) ([]string, error) {
	return nil, nil
}
func (d postgresDialect) createIndexes(_ context.Context, _ migrator, spec tableSpec) ([]string, error) {
	return createIndexesStd(d, spec), nil
}

// MySQL: DDL commits on its own, so a migration runs under a named lock of
// the session; there is no CREATE INDEX IF NOT EXISTS, and unique keys
// over clientid/topic are kept as a hash (see hashKeys).

const mysqlMigrateLock = "mqttpersist.sqlstore.migrate"

func (d *mysqlDialect) migrateOn(ctx context.Context, conn *sql.Conn, fn func(migrator) error) error {
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('"+mysqlMigrateLock+"', 60)").Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return errors.New("could not take the migration lock within 60s")
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK('"+mysqlMigrateLock+"')"); err != nil {
			// Do not pool a session that may still hold the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if err := d.pickCollation(ctx, conn); err != nil {
		return err
	}
	return fn(conn)
}

// pickCollation picks the binary, no-pad collation the server has.
func (d *mysqlDialect) pickCollation(ctx context.Context, conn migrator) error {
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
		d.collation = "utf8mb4_nopad_bin"
	case found["utf8mb4_0900_bin"]:
		d.collation = "utf8mb4_0900_bin"
	default:
		d.collation = "utf8mb4_bin"
	}
	return nil
}

func (d *mysqlDialect) tableOptions() string {
	return " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=" + d.collation
}

func (*mysqlDialect) columnsQuery() string {
	return `SELECT COLUMN_NAME, LOWER(DATA_TYPE), COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(COLLATION_NAME, ''),
			COALESCE(CHARACTER_SET_NAME, ''), COALESCE(DATETIME_PRECISION, 0)
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`
}

func (d *mysqlDialect) columnOK(k colKind, c colInfo) bool {
	bin := c.charset == "utf8mb4" && c.collation == d.collation
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
	return true
}

// retype: a number that becomes a string (the seeds' integer message IDs
// mean nothing next to ours) is emptied first.
func (d *mysqlDialect) retype(table string, c column, info colInfo) ([]string, string) {
	var before []string
	if isNumeric(info.dataType) && c.kind != kState && c.kind != kInt && c.kind != kMode {
		before = append(before, "UPDATE "+table+" SET "+c.name+" = NULL")
	}
	nn := ""
	if c.notNull {
		nn = " NOT NULL"
	}
	return before, "MODIFY COLUMN " + c.name + " " + d.colType(c.kind) + nn
}

// unindex: indexes over columns that grow (the seeds' unique keys on
// clientid and topic) would pass MySQL's index length limit, so they go;
// this package's own are made again by createIndexes.
func (d *mysqlDialect) unindex(ctx context.Context, conn migrator, table string, altered map[string]bool) ([]string, error) {
	idx, err := mysqlIndexes(ctx, conn, table)
	if err != nil {
		return nil, err
	}
	var out []string
	for name, cols := range idx {
		if name == "PRIMARY" {
			continue
		}
		for _, c := range cols {
			if altered[strings.ToLower(c)] {
				out = append(out, "DROP INDEX "+d.quote(name)+" ON "+d.quote(table))
				break
			}
		}
	}
	return out, nil
}

// createIndexes: the MySQL columns of each index (prefixes of long
// strings), unique keys over hashed columns on the hash, and only the
// indexes the table does not have.
func (d *mysqlDialect) createIndexes(ctx context.Context, conn migrator, spec tableSpec) ([]string, error) {
	existing, err := mysqlIndexes(ctx, conn, spec.name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ix := range spec.idx {
		name, cols := spec.name+ix.suffix, ix.mysql
		if ix.unique && spec.hash != nil {
			cols, name = hashCol, spec.name+"_ukey"
		}
		if cols == "" {
			continue
		}
		if _, ok := existing[name]; ok {
			continue
		}
		out = append(out, "CREATE "+indexKind(ix)+" "+d.quote(name)+" ON "+d.quote(spec.name)+" ("+cols+")")
	}
	return out, nil
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
