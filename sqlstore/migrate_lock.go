package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
)

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

// migrateOn: SQLite's DDL is transactional (and the database has one
// writer).
func (sqliteDialect) migrateOn(ctx context.Context, conn *sql.Conn, fn func(migrator) error) error {
	return migrateInTx(ctx, conn, fn)
}

// migrateOn: PostgreSQL's DDL is transactional; a migration takes an
// advisory transaction lock, released whatever happens.
func (postgresDialect) migrateOn(ctx context.Context, conn *sql.Conn, fn func(migrator) error) error {
	// Any constant will do; it only has to be the same for every store.
	return migrateInTx(ctx, conn, fn, "SELECT pg_advisory_xact_lock(7306247071805291)")
}

// tableOptions: SQLite and PostgreSQL need none.
func (std) tableOptions() string { return "" }

// mysqlMigrateLock is the named lock that serializes MySQL migrations.
const mysqlMigrateLock = "mqttpersist.sqlstore.migrate"

// migrateOn: MySQL's DDL commits on its own, so a migration runs under a
// named lock of the session, with the collation picked first (see colType).
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
