package sqlstore

import (
	"context"
	"strings"
)

// colInfo is an existing column as the database describes it.
type colInfo struct {
	dataType  string // lower case: "character varying", "varchar", "bytea", ...
	length    int64  // character length of strings, 0 if none
	collation string
	charset   string
	precision int64 // fractional seconds of MySQL datetimes
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

func (sqliteDialect) columnsQuery() string {
	return "SELECT name, lower(type), 0, '', '', 0 FROM pragma_table_info(?)"
}

// columnOK: a SQLite column takes any value, so none is ever altered.
func (sqliteDialect) columnOK(colKind, colInfo) bool                    { return true }
func (sqliteDialect) retype(string, column, colInfo) ([]string, string) { return nil, "" }

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
	case kSeq:
		return c.dataType == "bigint"
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
	case isNumeric(info.dataType) && c.kind != kSeq:
		using = " USING NULL"
	}
	return nil, "ALTER COLUMN " + c.name + " TYPE " + d.colType(c.kind) + using
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
	case kSeq:
		return c.dataType == "bigint"
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
	if isNumeric(info.dataType) && c.kind != kState && c.kind != kInt && c.kind != kMode && c.kind != kSeq {
		before = append(before, "UPDATE "+table+" SET "+c.name+" = NULL")
	}
	nn := ""
	if c.notNull {
		nn = " NOT NULL"
	}
	return before, "MODIFY COLUMN " + c.name + " " + d.colType(c.kind) + nn
}
