package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migrateSeq gives positions to the messages stored without one (by a
// version of this package before positions, or by such a node still
// running) and watermarks to the cursors without one, so that a fanout
// fetch returns what it returned before:
//
//   - the messages of each topic that have no position are numbered in
//     ID order above the topic's counter, which moves up by their number
//     (in one transaction, so that no Publish takes the same positions);
//   - a cursor without a watermark gets the position of the last message
//     of its topic whose ID is at most the cursor's (mid): the messages
//     it skipped are those below.
//
// Both look for their rows through partial indexes on PostgreSQL and
// SQLite (empty once migrated), so that running Migrate again costs
// nothing; MySQL has none and reads the tables.
func (s *Store) migrateSeq(ctx context.Context, m migrator) error {
	d := s.d
	msg, tc := d.quote(s.t.msg), d.quote(s.t.topic)
	var one int
	err := m.QueryRowContext(ctx, "SELECT 1 FROM "+msg+" WHERE seq IS NULL AND topic IS NOT NULL LIMIT 1").Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		join := "tc.topic = m.topic"
		if d.hashKeys() {
			join = "tc." + hashCol + " = " + hashExpr([]string{"m.topic"})
		}
		stmts := []string{
			"INSERT INTO " + tc + " (topic, seq, changed, n) SELECT topic, COUNT(*), " + d.now() + ", 0 FROM " + msg +
				" WHERE seq IS NULL AND topic IS NOT NULL GROUP BY topic" +
				d.onConflict([]string{"topic"}, "seq = "+d.current(s.t.topic, "seq")+" + "+d.excluded("seq")),
			d.updateFrom(msg, "seq = x.s",
				"(SELECT m.id, tc.seq - COUNT(*) OVER (PARTITION BY m.topic) + ROW_NUMBER() OVER (PARTITION BY m.topic ORDER BY m.msgid, m.id) AS s"+
					" FROM "+msg+" m JOIN "+tc+" tc ON "+join+" WHERE m.seq IS NULL) x",
				msg+".id = x.id"),
		}
		if err := inTxOf(ctx, m, func(tx migrator) error {
			for _, q := range stmts {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("%s: %w", q, err)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	acked := d.quote(s.t.acked)
	q := "UPDATE " + acked + " SET seq = COALESCE((SELECT MAX(m.seq) FROM " + msg + " m WHERE m.topic = " + acked +
		".topic AND m.msgid <= " + acked + ".mid), 0) WHERE seq IS NULL"
	if _, err := m.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// inTxOf runs fn in a transaction of m: m itself when it is one already
// (PostgreSQL and SQLite migrate in one), else one begun on the
// connection (MySQL).
func inTxOf(ctx context.Context, m migrator, fn func(migrator) error) error {
	conn, ok := m.(*sql.Conn)
	if !ok {
		return fn(m)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
