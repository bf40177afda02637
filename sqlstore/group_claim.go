package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

var _ persist.Claimer = (*Store)(nil)

// Claim leases a shared group's messages to one member at a time (see
// persist.Claimer): one upsert of the mqtt_claim rows (grp, msgid) that
// takes a row only where its claim ran out or is the owner's, so
// concurrent claims from any node give each message to one owner. Where
// the upsert returns what it wrote (PostgreSQL, SQLite) that is the answer;
// MySQL reads the owner's rows back. A release deletes the owner's rows;
// rows whose claim ran out are deleted now and then.
func (s *Store) Claim(ctx context.Context, group, owner string, lease time.Duration, ids ...string) ([]string, error) {
	if err := s.kit.Claim(ctx, group, owner, ids); err != nil || len(ids) == 0 {
		return nil, err
	}
	ids = uniqueIDs(ids)
	now := time.Now()
	unlock := s.lockWrites()
	defer unlock()
	var won []string
	var err error
	for try := 0; try < 3; try++ {
		won, err = s.claimGroup(ctx, group, owner, lease, ids, now)
		if !isDeadlock(err) {
			break
		}
	}
	if err == nil && s.claims.Add(1)%256 == 0 {
		// Claims that ran out are as good as none: delete them now and
		// then, so the table holds about what is claimed.
		_, err = s.db.ExecContext(ctx, s.d.rebind("DELETE FROM "+s.d.quote(s.t.claim)+" WHERE claim_until <= ?"), s.d.timeArg(now.Add(-time.Minute)))
	}
	if err != nil {
		return nil, s.kit.Fail(ctx, "Claim", err)
	}
	if lease <= 0 {
		return nil, nil
	}
	in := make(map[string]bool, len(won))
	for _, id := range won {
		in[id] = true
	}
	out := won[:0]
	for _, id := range ids {
		if in[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

func (s *Store) claimGroup(ctx context.Context, group, owner string, lease time.Duration, ids []string, now time.Time) ([]string, error) {
	d, tbl := s.d, s.d.quote(s.t.claim)
	// keys selects the rows of ids by their unique key, its arguments
	// first.
	keys := func(more ...any) (string, []any) {
		args := make([]any, 0, 2*len(ids)+len(more))
		for _, id := range ids {
			args = append(args, keyArgs(d, group, id)...)
		}
		k := "(" + keyCond(d, "", "grp", "msgid") + ")"
		return "(" + strings.TrimSuffix(strings.Repeat(k+" OR ", len(ids)), " OR ") + ")", append(args, more...)
	}
	if lease <= 0 {
		cond, args := keys(owner)
		_, err := s.db.ExecContext(ctx, d.rebind("DELETE FROM "+tbl+" WHERE "+cond+" AND claimed_by = ?"), args...)
		return nil, err
	}
	until := d.timeArg(now.Add(lease))
	args := make([]any, 0, 4*len(ids)+8)
	for _, id := range ids {
		args = append(args, group, id, owner, until)
	}
	// The claim is taken where it ran out or is the owner's. Where the
	// upsert has no WHERE (MySQL) each assignment is guarded and reads the
	// columns assigned before it: claimed_by first, so that once it is
	// the claimer's the guard holds for claim_until too.
	cond := "(" + d.current(s.t.claim, "claim_until") + " <= " + d.typed(kTime) + " OR " + d.current(s.t.claim, "claimed_by") + " = " + d.excluded("claimed_by") + ")"
	set := func(guard string) string {
		parts := []string{"claimed_by", "claim_until"}
		for i, c := range parts {
			v := d.excluded(c)
			if guard != "" {
				v = "CASE WHEN " + guard + " THEN " + v + " ELSE " + d.current(s.t.claim, c) + " END"
			}
			parts[i] = c + " = " + v
		}
		return strings.Join(parts, ", ")
	}
	q := "INSERT INTO " + tbl + " (grp, msgid, claimed_by, claim_until) VALUES " + rowsOf(len(ids), 4) +
		d.onConflictIf([]string{"grp", "msgid"}, set, cond)
	nowArg := d.timeArg(now)
	if d.returning() {
		args = append(args, nowArg)
		rows, err := s.db.QueryContext(ctx, d.rebind(q+" RETURNING msgid"), args...)
		if err != nil {
			return nil, err
		}
		return scanIDs(rows)
	}
	// MySQL: the guard appears once per assignment.
	args = append(args, nowArg, nowArg)
	var won []string
	err := s.inTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, d.rebind(q), args...); err != nil {
			return err
		}
		cond, back := keys(owner, nowArg)
		rows, err := tx.QueryContext(ctx, d.rebind("SELECT msgid FROM "+tbl+" WHERE "+cond+" AND claimed_by = ? AND claim_until > ?"), back...)
		if err != nil {
			return err
		}
		won, err = scanIDs(rows)
		return err
	})
	return won, err
}

// scanIDs reads and closes rows of one string column.
func scanIDs(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// uniqueIDs returns ids without repeats, in order.
func uniqueIDs(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
