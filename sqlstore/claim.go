package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// dbtx is a *sql.DB or a *sql.Tx.
type dbtx interface {
	querier
	execer
}

// claim hands out to clientID the queue messages that are unclaimed,
// lease-expired or claimed by clientID already (their lease is renewed).
// PostgreSQL and MySQL lock the candidates with FOR UPDATE SKIP LOCKED in a
// READ COMMITTED transaction (no gap locks that would stall publishers),
// so concurrent consumers never see the same rows. SQLite has one writer:
// the candidates are claimed by an UPDATE that checks again that they are
// unclaimed or the client's own, and only the rows it returns are handed
// out.
func (s *Store) claim(ctx context.Context, fq *storekit.Query) ([]*persist.Message, error) {
	if s.d.skipLocked() == "" { // no row locks: claim optimistically
		unlock := s.lockWrites()
		defer unlock()
		return s.claimPages(ctx, s.db, fq, true)
	}
	var out []*persist.Message
	var err error
	// Two claims can deadlock on InnoDB (SKIP LOCKED skips locked index
	// entries, not the wait for the row behind one) and the database then
	// rolls one back: that claim, which changed nothing, runs again.
	for try := 0; try < 3; try++ {
		err = s.inTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, func(tx *sql.Tx) error {
			var err error
			out, err = s.claimPages(ctx, tx, fq, false)
			return err
		})
		if !isDeadlock(err) {
			break
		}
	}
	return out, err
}

func (s *Store) claimPages(ctx context.Context, db dbtx, fq *storekit.Query, guarded bool) ([]*persist.Message, error) {
	d := s.d
	nw := topicNarrow("m.topic", fq.Match)
	clientID, now, limit := fq.ClientID, fq.Now, fq.Fetch.Limit
	until := now.Add(fq.Fetch.Lease)
	msg := d.quote(s.t.msg)
	var out []*persist.Message
	after := ""
	for {
		var q strings.Builder
		var args []any
		q.WriteString("SELECT " + msgColsM + " FROM " + msg + " m WHERE m.mode = 1 AND " + nw.sql)
		args = append(args, nw.args...)
		q.WriteString(" AND (m.claim_until IS NULL OR m.claim_until <= ? OR m.claimed_by = ?)")
		args = append(args, d.timeArg(now), clientID)
		args = s.common(&q, args, fq, "m.msgid", after)
		q.WriteString(" ORDER BY m.msgid")
		page := pageSize(limit, len(out), nw.exact)
		if page > 0 {
			q.WriteString(" LIMIT " + strconv.Itoa(page))
		}
		q.WriteString(d.skipLocked())
		want := 0
		if limit > 0 {
			want = limit - len(out)
		}
		var got []*persist.Message
		last, more, err := s.scanInto(ctx, db, d.rebind(q.String()), args, page, fq, want, &got)
		if err != nil {
			return nil, err
		}
		for len(got) > 0 {
			n := min(len(got), 500)
			claimed, err := s.mark(ctx, db, got[:n], clientID, now, until, guarded)
			if err != nil {
				return nil, err
			}
			out = append(out, claimed...)
			got = got[n:]
		}
		if !more || fq.Full(len(out)) {
			return out, nil
		}
		after = last
	}
}

// mark claims msgs for clientID until the lease ends and returns those it
// claimed: all of them when they are locked, else (guarded) those still
// unclaimed or claimed by clientID.
func (s *Store) mark(ctx context.Context, db dbtx, msgs []*persist.Message, clientID string, now, until time.Time, guarded bool) ([]*persist.Message, error) {
	d := s.d
	args := make([]any, 0, len(msgs)+4)
	args = append(args, clientID, d.timeArg(until))
	q := "UPDATE " + d.quote(s.t.msg) + " SET claimed_by = ?, claim_until = ? WHERE "
	if guarded {
		q += "mode = 1 AND (claim_until IS NULL OR claim_until <= ? OR claimed_by = ?) AND "
		args = append(args, d.timeArg(now), clientID)
	}
	q += "msgid IN " + placeholders(len(msgs))
	for _, m := range msgs {
		args = append(args, m.ID)
	}
	if !guarded {
		_, err := db.ExecContext(ctx, d.rebind(q), args...)
		return msgs, err
	}
	rows, err := db.QueryContext(ctx, d.rebind(q+" RETURNING msgid"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	won := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		won[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if won[m.ID] {
			out = append(out, m)
		}
	}
	return out, nil
}
