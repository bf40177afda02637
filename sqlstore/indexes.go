package sqlstore

import (
	"context"
	"strings"
)

// createIndexes: SQLite and PostgreSQL create every index IF NOT EXISTS,
// then drop the stale ones.
func (d std) createIndexes(_ context.Context, _ migrator, spec tableSpec) ([]string, error) {
	var out []string
	for _, ix := range spec.idx {
		if ix.cols == "" {
			continue
		}
		q := "CREATE " + indexKind(ix) + " IF NOT EXISTS " + d.quote(spec.name+ix.suffix) + " ON " + d.quote(spec.name) + " (" + ix.cols + ")"
		if ix.where != "" {
			q += " WHERE " + ix.where
		}
		out = append(out, q)
	}
	for _, suffix := range spec.stale {
		out = append(out, "DROP INDEX IF EXISTS "+d.quote(spec.name+suffix))
	}
	return out, nil
}

// unindex: SQLite and PostgreSQL never need to drop an index before
// altering a column.
func (std) unindex(context.Context, migrator, string, map[string]bool) ([]string, error) {
	return nil, nil
}

func indexKind(ix index) string {
	if ix.unique {
		return "UNIQUE INDEX"
	}
	return "INDEX"
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
