package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/topic"
)

// Acked, in one transaction, deletes the acked queue messages claimed by
// clientID and records each other ack as the client's ack of that one
// message: a row of mqtt_acked_msg, until the client's watermark of the
// message's topic (mqtt_acked.seq) passes the message and the row is
// deleted. See the package doc's Ordering.
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	if err := s.kit.Acked(ctx, clientID, acks); err != nil || len(acks) == 0 {
		return err
	}
	now := time.Now()
	unlock := s.lockWrites()
	defer unlock()
	// READ COMMITTED where there is a choice: each statement reads a
	// snapshot of its own (the watermark is computed by one statement),
	// and MySQL takes no gap locks that would stall publishers.
	var opts *sql.TxOptions
	if !s.d.oneWriter() {
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	var err error
	for try := 0; try < 3; try++ {
		err = s.inTx(ctx, opts, func(tx *sql.Tx) error { return s.ack(ctx, tx, clientID, acks, now) })
		if !isDeadlock(err) {
			break
		}
	}
	return s.kit.Fail(ctx, "Acked", err)
}

func (s *Store) ack(ctx context.Context, tx *sql.Tx, clientID string, acks []persist.Ack, now time.Time) error {
	queue, err := s.ackQueue(ctx, tx, clientID, acks)
	if err != nil {
		return err
	}
	// The fanout acks, each ID once, in ID order (so that two calls
	// insert the rows they share in one order).
	fan := make([]persist.Ack, 0, len(acks))
	seen := make(map[string]bool, len(acks))
	for _, a := range acks {
		if !queue[a.ID] && !seen[a.ID] {
			seen[a.ID] = true
			fan = append(fan, a)
		}
	}
	if len(fan) == 0 {
		return nil
	}
	slices.SortFunc(fan, func(a, b persist.Ack) int { return strings.Compare(a.ID, b.ID) })
	at := s.d.timeArg(now)

	// Per topic (in topic order): the highest acked ID (mid, for the
	// seeds' queries) and the new watermark. The cursor rows are written
	// first, so that the Acked of one client and topic run one after the
	// other: none waits, holding its cursor, for the rows another one
	// inserted (MySQL's deletes wait for those), and each reads the
	// watermark the one before left.
	cursors := storekit.Cursors(fan, func(int) bool { return true })
	for rest := cursors; len(rest) > 0; {
		n := min(len(rest), 500)
		args := make([]any, 0, n*5)
		for _, c := range rest[:n] {
			args = append(args, clientID, c.Topic, c.ID, 0, at)
		}
		if _, err := tx.ExecContext(ctx, s.cursorSQL(n), args...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	for rest := fan; len(rest) > 0; {
		n := min(len(rest), 500)
		args := make([]any, 0, n*4)
		for _, a := range rest[:n] {
			args = append(args, clientID, a.ID, a.Topic, at)
		}
		if _, err := tx.ExecContext(ctx, s.ackMsgSQL(n), args...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	starts, err := s.starts(ctx, tx, clientID, cursors)
	if err != nil {
		return err
	}
	for rest := cursors; len(rest) > 0; {
		n := min(len(rest), 100)
		marks, err := s.marks(ctx, tx, clientID, rest[:n], starts, now)
		if err != nil {
			return err
		}
		for i, c := range rest[:n] {
			if start := starts[c.Topic]; start != "" && marks[i].to > marks[i].w {
				if marks[i].to, err = s.pass(ctx, tx, clientID, c.Topic, start, marks[i], now); err != nil {
					return err
				}
			}
		}
		args := make([]any, 0, n*5)
		for i, c := range rest[:n] {
			args = append(args, clientID, c.Topic, c.ID, marks[i].to, at)
		}
		if _, err := tx.ExecContext(ctx, s.cursorSQL(n), args...); err != nil {
			return err
		}
		// The acks at or below the watermark are kept by it now: one
		// statement per topic, which reads the rows of that client and
		// topic only.
		for i, c := range rest[:n] {
			if _, err := tx.ExecContext(ctx, s.q.settle, clientID, c.Topic, c.Topic, marks[i].to); err != nil {
				return err
			}
		}
		rest = rest[n:]
	}
	return nil
}

// passBudget is the most messages one Acked passes per topic (see pass):
// a watermark moves over a long history in several calls.
const passBudget = 5000

// pass records the messages that the watermark is about to pass without
// an ack because they were due to none of the client's subscriptions
// (their IDs are at most start, see starts): rows of mqtt_acked_msg with
// passed 1, which a fetch whose filter has an earlier start (none, or
// History) still returns. It returns the watermark, lowered so that one
// call passes at most passBudget messages.
func (s *Store) pass(ctx context.Context, tx *sql.Tx, clientID, name, start string, m mark, now time.Time) (int64, error) {
	rows, err := tx.QueryContext(ctx, s.q.passList, name, m.w, m.to, start, s.d.timeArg(now), clientID)
	if err != nil {
		return 0, err
	}
	var ids []string
	var last int64
	for rows.Next() {
		var id string
		if err := rows.Scan(&id, &last); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	to := m.to
	if len(ids) == passBudget {
		to = last
	}
	at := s.d.timeArg(now)
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, 0, n*4)
		for _, id := range ids[:n] {
			args = append(args, clientID, id, name, at)
		}
		if _, err := tx.ExecContext(ctx, s.passSQL(n), args...); err != nil {
			return 0, err
		}
		ids = ids[n:]
	}
	return to, nil
}

// ackQueue deletes the acked queue messages claimed by clientID and
// returns the IDs of the acks that are of queue messages (claimed by the
// client or not).
func (s *Store) ackQueue(ctx context.Context, tx *sql.Tx, clientID string, acks []persist.Ack) (map[string]bool, error) {
	msg := s.d.quote(s.t.msg)
	queue := map[string]bool{}
	for rest := acks; len(rest) > 0; {
		n := min(len(rest), 500)
		args := make([]any, n)
		for i, a := range rest[:n] {
			args[i] = a.ID
		}
		rows, err := tx.QueryContext(ctx, s.d.rebind("SELECT msgid FROM "+msg+" WHERE mode = 1 AND msgid IN "+placeholders(n)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			queue[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	ids := make([]string, 0, len(queue))
	for id := range queue {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, 0, n+1)
		args = append(args, clientID)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, s.d.rebind("DELETE FROM "+msg+" WHERE mode = 1 AND claimed_by = ? AND msgid IN "+placeholders(n)), args...); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return queue, nil
}

// starts returns, per topic of cursors, the earliest fanout start of the
// client's stored subscriptions whose filter matches it: the messages
// with IDs up to that start were never due to the client, so they do not
// hold its watermark back. It is "" (every message counts) when one of
// those subscriptions has no start (History) or none matches.
func (s *Store) starts(ctx context.Context, tx *sql.Tx, clientID string, cursors []persist.Ack) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, s.q.subStarts, clientID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type sub struct{ filter, start string }
	var subs []sub
	for rows.Next() {
		var id, filter, start sql.NullString
		if err := rows.Scan(&id, &filter, &start); err != nil {
			return nil, err
		}
		if id.String != clientID {
			continue // a collation that pads or folds
		}
		f := filter.String
		if _, inner, ok := topic.Shared(f); ok {
			f = inner
		}
		subs = append(subs, sub{f, start.String})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cursors))
	for _, c := range cursors {
		first, matched := "", false
		for _, sb := range subs {
			if !topic.Match(sb.filter, c.Topic) {
				continue
			}
			if !matched || sb.start < first {
				first = sb.start
			}
			matched = true
		}
		out[c.Topic] = first
	}
	return out, nil
}

// mark is a topic's watermark w as read and the one it moves to.
type mark struct{ w, to int64 }

// marks returns, per topic of cursors, the client's watermark and the one
// it moves to: one below the lowest position above it of a stored,
// unexpired fanout message of the topic that the client has not acked
// and whose ID is after the topic's start, or the topic's counter when
// there is none. One statement reads one snapshot: a message it does not
// see commits with a position above the counter it sees (see the package
// doc), so every position up to the new watermark is settled.
func (s *Store) marks(ctx context.Context, tx *sql.Tx, clientID string, cursors []persist.Ack, starts map[string]string, now time.Time) ([]mark, error) {
	d := s.d
	args := make([]any, 0, len(cursors)*9)
	exp := d.timeArg(now)
	for _, c := range cursors {
		args = append(args, keyArgs(d, clientID, c.Topic)...)
		args = append(args, keyArgs(d, c.Topic)...)
		args = append(args, c.Topic, starts[c.Topic])
		args = append(args, keyArgs(d, clientID, c.Topic)...)
		args = append(args, exp, clientID)
	}
	rows, err := tx.QueryContext(ctx, s.marksSQL(len(cursors)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]mark, len(cursors))
	for rows.Next() {
		var k int
		var w, hi, lo sql.NullInt64
		if err := rows.Scan(&k, &w, &hi, &lo); err != nil {
			return nil, err
		}
		if k < 0 || k >= len(out) {
			continue
		}
		m := mark{w: w.Int64}
		switch {
		case lo.Valid:
			m.to = lo.Int64 - 1
		case hi.Valid:
			m.to = hi.Int64
		}
		m.to = max(m.to, m.w)
		out[k] = m
	}
	return out, rows.Err()
}

// unackedCond is the condition that the client (one '?') has not acked
// message m.
func (s *Store) unackedCond() string {
	d := s.d
	if d.hashKeys() {
		return "NOT EXISTS (SELECT 1 FROM " + d.quote(s.t.ackedMsg) + " x WHERE x." + hashCol + " = " + hashExpr([]string{"?", "m.msgid"}) + ")"
	}
	return "NOT EXISTS (SELECT 1 FROM " + d.quote(s.t.ackedMsg) + " x WHERE x.clientid = ? AND x.msgid = m.msgid)"
}

// marksSQL returns the watermark query of n topics (see marks): one
// SELECT per topic, numbered by k, each reading the current watermark w,
// the counter hi and the lowest position lo.
func (s *Store) marksSQL(n int) string {
	return s.cached("marks:"+strconv.Itoa(n), func() string {
		d := s.d
		acked, msg := d.quote(s.t.acked), d.quote(s.t.msg)
		w := "(SELECT a.seq FROM " + acked + " a WHERE " + keyCond(d, "a", "clientid", "topic") + ")"
		hi := "(SELECT tc.seq FROM " + d.quote(s.t.topic) + " tc WHERE " + keyCond(d, "tc", "topic") + ")"
		lo := "(SELECT MIN(m.seq) FROM " + msg + " m WHERE m.topic = ? AND m.mode = 0 AND m.msgid > ?" +
			" AND m.seq > COALESCE(" + w + ", 0) AND (m.expiry IS NULL OR m.expiry > ?) AND " + s.unackedCond() + ")"
		parts := make([]string, n)
		for i := range n {
			parts[i] = "SELECT " + strconv.Itoa(i) + " AS k, " + w + " AS w, " + hi + " AS hi, " + lo + " AS lo"
		}
		return d.rebind(strings.Join(parts, " UNION ALL "))
	})
}

// passListSQL returns pass's query of the messages to pass, in position
// order, at most passBudget. Its parameters: the topic, the watermark,
// the new one, the start, now and the client ID.
func passListSQL(s *Store) string {
	d := s.d
	return d.rebind("SELECT m.msgid, m.seq FROM " + d.quote(s.t.msg) + " m WHERE m.topic = ? AND m.mode = 0 AND m.seq > ? AND m.seq <= ?" +
		" AND m.msgid <= ? AND (m.expiry IS NULL OR m.expiry > ?) AND " + s.unackedCond() + " ORDER BY m.seq LIMIT " + strconv.Itoa(passBudget))
}

// settleSQL returns the delete of a client's acks of one topic whose
// messages are at or below the given watermark. Its parameters: the
// client ID, the topic twice and the watermark.
func settleSQL(s *Store) string {
	d := s.d
	am := d.quote(s.t.ackedMsg)
	return d.rebind("DELETE FROM " + am + " WHERE clientid = ? AND topic = ? AND passed = 0 AND EXISTS (SELECT 1 FROM " +
		d.quote(s.t.msg) + " m WHERE m.msgid = " + am + ".msgid AND m.topic = ? AND m.seq <= ?)")
}

// passSQL returns the insert of n passed messages (rows with passed 1);
// an ack recorded already stays as it is.
func (s *Store) passSQL(n int) string {
	return s.cached("pass:"+strconv.Itoa(n), func() string {
		d := s.d
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, 1), ", n), ", ")
		return d.rebind("INSERT INTO " + d.quote(s.t.ackedMsg) + " (clientid, msgid, topic, acked_at, passed) VALUES " + rows +
			d.onConflict([]string{"clientid", "msgid"}, ""))
	})
}

// ackMsgSQL returns the insert of n individual acks; an ack recorded
// already stays as it is, and a message the watermark passed is acked.
func (s *Store) ackMsgSQL(n int) string {
	return s.cached("ackmsg:"+strconv.Itoa(n), func() string {
		d := s.d
		row := "(?, ?, ?, ?, 0)"
		rows := strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
		return d.rebind("INSERT INTO " + d.quote(s.t.ackedMsg) + " (clientid, msgid, topic, acked_at, passed) VALUES " + rows +
			d.onConflict([]string{"clientid", "msgid"}, "passed = 0"))
	})
}

// cursorSQL returns the upsert of n cursors (mqtt_acked rows): the
// highest acked ID and the watermark only move forward.
func (s *Store) cursorSQL(n int) string {
	return s.cached("cursor:"+strconv.Itoa(n), func() string {
		d := s.d
		set := "mid = " + d.greatest("COALESCE("+d.current(s.t.acked, "mid")+", '')", d.excluded("mid")) +
			", seq = " + d.greatest("COALESCE("+d.current(s.t.acked, "seq")+", 0)", d.excluded("seq")) +
			", created = " + d.excluded("created")
		return d.rebind("INSERT INTO " + d.quote(s.t.acked) + " (clientid, topic, mid, seq, created) VALUES " + rowsOf(n, 5) +
			d.onConflict([]string{"clientid", "topic"}, set))
	})
}
