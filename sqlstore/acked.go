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
	stored, subs, err := s.ackLookups(ctx, tx, clientID, acks)
	if err != nil {
		return err
	}
	// The fanout acks, each ID once, in ID order (so that two calls
	// insert the rows they share in one order), under their stored topic.
	fan := make([]persist.Ack, 0, len(acks))
	seen := make(map[string]bool, len(acks))
	for _, a := range acks {
		st, ok := stored[a.ID]
		if ok && st.queue || seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		if ok {
			a.Topic = st.topic
		}
		fan = append(fan, a)
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
	fresh := make(map[string]bool, len(cursors)) // topics without a watermark (PostgreSQL, SQLite)
	for rest := cursors; len(rest) > 0; {
		n := min(len(rest), 500)
		args := make([]any, 0, n*5)
		for _, c := range rest[:n] {
			args = append(args, clientID, c.Topic, c.ID, 0, at)
		}
		if err := s.touchCursors(ctx, tx, n, args, fresh); err != nil {
			return err
		}
		rest = rest[n:]
	}
	// This call's acks of stored messages, by topic: their positions.
	acked := make(map[string][]int64, len(cursors))
	for _, a := range fan {
		if st, ok := stored[a.ID]; ok && st.seq > 0 {
			acked[a.Topic] = append(acked[a.Topic], st.seq)
		}
	}
	starts := startsOf(subs, cursors)
	var rows []persist.Ack // the acks that stay rows: above the new watermark
	var kept []persist.Ack // acks of messages in the range the watermark passed
	var unpass []string    // acks of messages the watermark passed as rows
	for rest := cursors; len(rest) > 0; {
		n := min(len(rest), 100)
		from := make([]byte, n)
		for i, c := range rest[:n] {
			switch {
			case s.d.hashKeys():
				from[i] = fromEach
			case fresh[c.Topic] && starts[c.Topic] != "":
				from[i] = fromStart
			default:
				from[i] = fromW
			}
		}
		marks, err := s.marks(ctx, tx, clientID, rest[:n], from, starts, acked, now)
		if err != nil {
			return err
		}
		var moved []int
		for i, c := range rest[:n] {
			m := &marks[i]
			start := starts[c.Topic]
			switch {
			case start == "" || m.to <= m.w:
			case m.base.seq == m.w && (m.base.seq == 0 || m.base.start == start):
				// The range the watermark passed grows with it.
				m.grown = true
				m.base = base{m.to, start}
			case !m.dense:
				if m.to, err = s.pass(ctx, tx, clientID, c.Topic, start, *m, seen, now); err != nil {
					return err
				}
			}
			if m.to > m.w {
				moved = append(moved, i)
			}
		}
		if len(moved) > 0 {
			args := make([]any, 0, len(moved)*7)
			for _, i := range moved {
				m := &marks[i]
				args = append(args, clientID, rest[i].Topic, rest[i].ID, m.to, at, nil, nil)
				if m.grown {
					args[len(args)-2], args[len(args)-1] = m.base.seq, m.base.start
				}
			}
			if _, err := tx.ExecContext(ctx, s.cursorSQL(len(moved), true), args...); err != nil {
				return err
			}
		}
		// The rows at or below a watermark that moved are kept by it now:
		// one statement per topic, which reads the rows of that client
		// and topic only; the acks of messages the grown range covers
		// stay, as kept acks.
		for _, i := range moved {
			m := &marks[i]
			if m.rows == 0 {
				continue
			}
			if m.grown {
				if _, err := tx.ExecContext(ctx, s.q.keep, clientID, rest[i].Topic, m.base.start, rest[i].Topic, m.to); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, s.q.settle, clientID, rest[i].Topic, rest[i].Topic, m.to); err != nil {
				return err
			}
		}
		to := make(map[string]mark, n)
		for i, c := range rest[:n] {
			to[c.Topic] = marks[i]
		}
		for _, a := range fan {
			m, ok := to[a.Topic]
			if !ok {
				continue
			}
			st, isStored := stored[a.ID]
			switch {
			case !isStored || st.seq == 0 || st.seq > m.to:
				rows = append(rows, a)
			case m.base.covers(st.seq, a.ID):
				kept = append(kept, a)
			case st.seq <= m.w && m.passed > 0:
				unpass = append(unpass, a.ID)
			}
		}
		rest = rest[n:]
	}
	if err := s.ackRows(ctx, tx, clientID, rows, 0, at); err != nil {
		return err
	}
	if err := s.ackRows(ctx, tx, clientID, kept, 2, at); err != nil {
		return err
	}
	for len(unpass) > 0 {
		n := min(len(unpass), 500)
		args := make([]any, 0, n+1)
		args = append(args, clientID)
		for _, id := range unpass[:n] {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, s.d.rebind("DELETE FROM "+s.d.quote(s.t.ackedMsg)+" WHERE clientid = ? AND passed = 1 AND msgid IN "+placeholders(n)), args...); err != nil {
			return err
		}
		unpass = unpass[n:]
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
func (s *Store) pass(ctx context.Context, tx *sql.Tx, clientID, name, start string, m mark, acked map[string]bool, now time.Time) (int64, error) {
	rows, err := tx.QueryContext(ctx, s.q.passList, name, m.w, m.to, start, s.d.timeArg(now), clientID)
	if err != nil {
		return 0, err
	}
	var ids []string
	var last int64
	read := 0
	for rows.Next() {
		read++
		var id string
		if err := rows.Scan(&id, &last); err != nil {
			rows.Close()
			return 0, err
		}
		if !acked[id] { // acked in this call, without a row yet
			ids = append(ids, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	to := m.to
	if read == passBudget {
		to = last
	}
	passed := make([]persist.Ack, len(ids))
	for i, id := range ids {
		passed[i] = persist.Ack{ID: id, Topic: name}
	}
	return to, s.ackRows(ctx, tx, clientID, passed, 1, s.d.timeArg(now))
}

// ackRows inserts rows of mqtt_acked_msg with the given passed value for
// acks, 500 a statement (see ackRowsSQL).
func (s *Store) ackRows(ctx context.Context, tx *sql.Tx, clientID string, acks []persist.Ack, passed int, at any) error {
	for len(acks) > 0 {
		n := min(len(acks), 500)
		args := make([]any, 0, n*4)
		for _, a := range acks[:n] {
			args = append(args, clientID, a.ID, a.Topic, at)
		}
		if _, err := tx.ExecContext(ctx, s.ackRowsSQL(n, passed), args...); err != nil {
			return err
		}
		acks = acks[n:]
	}
	return nil
}

// sub is a stored subscription's filter (without $share/<group>/) and
// fanout start.
type sub struct{ filter, start string }

// storedMsg is what Acked reads of an acked message that is stored.
type storedMsg struct {
	queue bool
	topic string
	seq   int64 // 0: none (a row of a version before positions)
}

// ackLookups deletes the acked queue messages claimed by clientID and
// returns the acked messages that are stored (queue messages, claimed by
// the client or not, and fanout messages with their positions), and the
// client's subscriptions — in one query when the acks are at most 500.
func (s *Store) ackLookups(ctx context.Context, tx *sql.Tx, clientID string, acks []persist.Ack) (map[string]storedMsg, []sub, error) {
	msg := s.d.quote(s.t.msg)
	stored := make(map[string]storedMsg, len(acks))
	var subs []sub
	read := func(q string, args []any) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k int
			var name, other, id sql.NullString
			var mode, seq sql.NullInt64
			if err := rows.Scan(&k, &name, &other, &mode, &seq, &id); err != nil {
				return err
			}
			switch {
			case k == 0:
				stored[name.String] = storedMsg{queue: mode.Int64 == 1, topic: other.String, seq: seq.Int64}
			case id.String == clientID: // else a collation that pads or folds
				f := name.String
				if _, inner, ok := topic.Shared(f); ok {
					f = inner
				}
				subs = append(subs, sub{f, other.String})
			}
		}
		return rows.Err()
	}
	withSubs := len(acks) <= 500
	for rest := acks; len(rest) > 0; {
		n := min(len(rest), 500)
		args := make([]any, 0, n+1)
		for _, a := range rest[:n] {
			args = append(args, a.ID)
		}
		q := "SELECT 0 AS k, msgid, topic, mode, seq, NULL AS clientid FROM " + msg + " WHERE msgid IN " + placeholders(n)
		if withSubs {
			q += " UNION ALL SELECT 1, topic, start_id, NULL, NULL, clientid FROM " + s.d.quote(s.t.sub) + " WHERE clientid = ?"
			args = append(args, clientID)
		}
		if err := read(s.d.rebind(q), args); err != nil {
			return nil, nil, err
		}
		rest = rest[n:]
	}
	if !withSubs {
		rows, err := tx.QueryContext(ctx, s.q.subStarts, clientID)
		if err != nil {
			return nil, nil, err
		}
		for rows.Next() {
			var id, filter, start sql.NullString
			if err := rows.Scan(&id, &filter, &start); err != nil {
				rows.Close()
				return nil, nil, err
			}
			if id.String == clientID {
				f := filter.String
				if _, inner, ok := topic.Shared(f); ok {
					f = inner
				}
				subs = append(subs, sub{f, start.String})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
	}
	var ids []string
	for id, st := range stored {
		if st.queue {
			ids = append(ids, id)
		}
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
			return nil, nil, err
		}
		ids = ids[n:]
	}
	return stored, subs, nil
}

// startsOf returns, per topic of cursors, the earliest fanout start of
// the client's stored subscriptions whose filter matches it: the
// messages with IDs up to that start were never due to the client, so
// they do not hold its watermark back. It is "" (every message counts)
// when one of those subscriptions has no start (History) or none matches.
func startsOf(subs []sub, cursors []persist.Ack) map[string]string {
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
	return out
}

// mark is a topic's watermark w as read and the one it moves to, the
// client's rows of acks (rows) and of passed messages (passed) of the
// topic, and whether the positions from w to the new watermark are all
// this call's acks (dense: nothing to pass on the way).
type mark struct {
	w, to        int64
	rows, passed int64
	dense        bool
	base         base // the range the watermark passed (see base)
	grown        bool // this call grows base with the watermark
}

// base is the range of messages the watermark passed unacked because they
// were due to none of the client's subscriptions, kept on the cursor
// (mqtt_acked.base_seq and base_start) rather than as a row each: the
// messages at positions up to seq with IDs up to start, but those the
// client has a row of (a kept ack: passed 2). Zero: none.
type base struct {
	seq   int64
	start string
}

// covers reports whether the message at position seq with the given ID is
// in the range.
func (b base) covers(seq int64, id string) bool { return seq <= b.seq && id <= b.start }

// marks returns, per topic of cursors, the client's watermark and the one
// it moves to: one below the lowest position above it of a stored,
// unexpired fanout message of the topic that the client has not acked
// (by a row, or in this call: acked, the positions by topic) and whose ID
// is after the topic's start, or the topic's counter when there is none.
// One statement reads one snapshot: a message it does not see commits
// with a position above the counter it sees (see the package doc), so
// every position up to the new watermark is settled.
func (s *Store) marks(ctx context.Context, tx *sql.Tx, clientID string, cursors []persist.Ack, from []byte, starts map[string]string,
	acked map[string][]int64, now time.Time) ([]mark, error) {
	rows, err := tx.QueryContext(ctx, s.marksSQL(from), s.marksArgs(clientID, cursors, from, starts, acked, now)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]mark, len(cursors))
	hi := make([]sql.NullInt64, len(cursors))
	cands := make([][]int64, len(cursors))
	for rows.Next() {
		var k, kind int
		var v1, v2, v3, v4, v5 sql.NullInt64
		var v6 sql.NullString
		if err := rows.Scan(&k, &kind, &v1, &v2, &v3, &v4, &v5, &v6); err != nil {
			return nil, err
		}
		if k < 0 || k >= len(out) {
			continue
		}
		if kind == 0 {
			out[k].w, hi[k], out[k].rows, out[k].passed = v1.Int64, v2, v3.Int64, v4.Int64
			out[k].base = base{v5.Int64, v6.String}
		} else {
			cands[k] = append(cands[k], v1.Int64)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for k, c := range cursors {
		m := &out[k]
		mine := make(map[int64]bool, len(acked[c.Topic]))
		for _, q := range acked[c.Topic] {
			mine[q] = true
		}
		slices.Sort(cands[k])
		lo := int64(0)
		for _, q := range cands[k] {
			if !mine[q] {
				lo = q
				break
			}
		}
		switch {
		case lo > 0:
			m.to = lo - 1
		case len(cands[k]) <= len(acked[c.Topic]):
			m.to = hi[k].Int64 // every due message above w is acked
		}
		m.to = max(m.to, m.w)
		// Dense: every position in (w, to] is one of this call's acks.
		n := int64(0)
		for q := range mine {
			if q > m.w && q <= m.to {
				n++
			}
		}
		m.dense = m.rows == 0 && n == m.to-m.w
	}
	return out, nil
}

// marksArgs returns the parameters of marksSQL (see marks).
func (s *Store) marksArgs(clientID string, cursors []persist.Ack, from []byte, starts map[string]string, acked map[string][]int64, now time.Time) []any {
	d := s.d
	args := make([]any, 0, len(cursors)*16)
	exp := d.timeArg(now)
	for i, c := range cursors {
		args = append(args, keyArgs(d, clientID, c.Topic)...)
		args = append(args, keyArgs(d, c.Topic)...)
		args = append(args, clientID, c.Topic, clientID, c.Topic)
		args = append(args, keyArgs(d, clientID, c.Topic)...)
		args = append(args, keyArgs(d, clientID, c.Topic)...)
		args = s.candsArgs(args, from[i], clientID, c.Topic, starts[c.Topic], exp, len(acked[c.Topic])+1)
	}
	return args
}

// unackedCond is the condition that the client (one '?') has not acked
// message m: a look-up of one ack row per message, whatever the
// statistics say. PostgreSQL would else turn it into an anti-join, and
// for a client its statistics do not know yet (one connected since the
// last ANALYZE: estimated at one ack row) it picks a nested loop over the
// client's acks, materialized, compared with every message — a second per
// call at 5,000 acks above the watermark, which stalled an async
// broker's pipeline (every Acked timed out and was retried). OFFSET 0 keeps the subquery a per-row
// probe, and with the topic in it every index the probe may pick,
// (clientid, msgid) or (clientid, topic, msgid), finds the row by
// equality (TestUnackedLookupScales). An ack's topic is its message's.
func (s *Store) unackedCond() string {
	d := s.d
	if d.hashKeys() {
		return "NOT EXISTS (SELECT 1 FROM " + d.quote(s.t.ackedMsg) + " x WHERE x." + hashCol + " = " + hashExpr([]string{"?", "m.msgid"}) + ")"
	}
	fence := ""
	if d.name() == "postgres" {
		fence = " OFFSET 0"
	}
	return "NOT EXISTS (SELECT 1 FROM " + d.quote(s.t.ackedMsg) + " x WHERE x.clientid = ? AND x.topic = m.topic AND x.msgid = m.msgid" + fence + ")"
}

// Where marks reads a topic's candidates from (see candsSQL).
const (
	fromW     = 's' // the watermark, in position order
	fromStart = 'i' // a new cursor's start, by ID
	fromEach  = 'm' // either, chosen by the database (MySQL)
)

// marksSQL returns the watermark query of len(from) topics (see marks),
// from[k] where topic k's candidates are read from: per topic, numbered
// by k, one row (kind 0) of the current watermark, the counter, the
// client's numbers of ack and passed rows of the topic and its passed
// range, and the positions (kind 1) of the first due messages above the
// watermark that have no ack row, as many as the parameter says.
func (s *Store) marksSQL(from []byte) string {
	return s.cached("marks:"+string(from), func() string {
		d := s.d
		acked, am := d.quote(s.t.acked), d.quote(s.t.ackedMsg)
		cur := func(col string) string {
			return "(SELECT a." + col + " FROM " + acked + " a WHERE " + keyCond(d, "a", "clientid", "topic") + ")"
		}
		w := cur("seq")
		hi := "(SELECT tc.seq FROM " + d.quote(s.t.topic) + " tc WHERE " + keyCond(d, "tc", "topic") + ")"
		count := func(passed string) string {
			return "(SELECT COUNT(*) FROM " + am + " r WHERE r.clientid = ? AND r.topic = ? AND r.passed = " + passed + ")"
		}
		parts := make([]string, len(from))
		for i, f := range from {
			k := strconv.Itoa(i)
			parts[i] = "SELECT " + k + " AS k, 0 AS kind, " + w + " AS v1, " + hi + " AS v2, " + count("0") + " AS v3, " + count("1") + " AS v4, " +
				cur("base_seq") + " AS v5, " + cur("base_start") + " AS v6" +
				" UNION ALL SELECT " + k + ", 1, c.seq, NULL, NULL, NULL, NULL, NULL FROM (" + s.candsSQL(w, f) + ") c"
		}
		return d.rebind(strings.Join(parts, " UNION ALL "))
	})
}

// candsSQL returns the candidates' part of marksSQL, of the watermark w,
// read from (fromW, fromStart or fromEach): in position order from the
// watermark; but for a client with a start and no watermark yet (new to
// the topic), from the start by ID, sorted (the walk from position 0 would
// read the topic's whole past before the start first). On PostgreSQL and
// SQLite, Acked knows which applies before it asks (see cursorSQL) and
// the statement has that part alone: its plan, which PostgreSQL reuses
// (generic) after five calls, reads only what applies — with both,
// gated by a condition, the part that does not apply read the topic's
// whole past in a plan made while the table was small, at every call.
// MySQL, which plans every call, gets both and evaluates the condition
// without columns once, when it plans. See candsArgs for its parameters.
func (s *Store) candsSQL(w string, from byte) string {
	msg := s.d.quote(s.t.msg)
	wm := "COALESCE(" + w + ", 0)"
	arm := func(cond, order string) string {
		return "SELECT c.seq FROM (SELECT m.seq FROM " + msg + " m WHERE m.topic = ? AND m.mode = 0 AND " + cond +
			" AND (m.expiry IS NULL OR m.expiry > ?) AND " + s.unackedCond() + " ORDER BY " + order + " LIMIT ?) c"
	}
	bySeq := arm("m.seq > "+wm+" AND m.msgid > ?", "m.seq")
	byID := arm("m.msgid > ?", "m.seq + 0")
	switch from {
	case fromW:
		return bySeq
	case fromStart:
		return byID
	}
	gate := wm + " = 0 AND ? > ''"
	return arm("NOT ("+gate+") AND m.seq > "+wm+" AND m.msgid > ?", "m.seq") + " UNION ALL " + arm(gate+" AND m.msgid > ?", "m.seq + 0")
}

// candsArgs appends the parameters of candsSQL to args: for a client's
// topic, its start, now and the limit.
func (s *Store) candsArgs(args []any, from byte, clientID, name, start string, now any, limit int) []any {
	w := keyArgs(s.d, clientID, name)
	switch from {
	case fromW:
		args = append(args, name)
		args = append(args, w...)
		return append(args, start, now, clientID, limit)
	case fromStart:
		return append(args, name, start, now, clientID, limit)
	}
	args = append(args, name)
	args = append(args, w...)
	args = append(args, start)
	args = append(args, w...)
	args = append(args, start, now, clientID, limit, name)
	args = append(args, w...)
	return append(args, start, start, now, clientID, limit)
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

// keepSQL returns the update of a client's acks of one topic (rows with
// passed 0) whose messages have IDs up to a start and are at or below a
// watermark into kept acks (passed 2). Its parameters: the client ID, the
// topic, the start, the topic and the watermark.
func keepSQL(s *Store) string {
	d := s.d
	am := d.quote(s.t.ackedMsg)
	return d.rebind("UPDATE " + am + " SET passed = 2 WHERE clientid = ? AND topic = ? AND passed = 0 AND msgid <= ? AND EXISTS (SELECT 1 FROM " +
		d.quote(s.t.msg) + " m WHERE m.msgid = " + am + ".msgid AND m.topic = ? AND m.seq <= ?)")
}

// ackRowsSQL returns the insert of n rows of mqtt_acked_msg with the
// given passed value: acks (0; a row there already becomes one), passed
// messages (1; an ack recorded already stays as it is) or kept acks (2; a
// row there already becomes one).
func (s *Store) ackRowsSQL(n, passed int) string {
	return s.cached("ackrows:"+strconv.Itoa(n)+":"+strconv.Itoa(passed), func() string {
		d := s.d
		p := strconv.Itoa(passed)
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, "+p+"), ", n), ", ")
		set := "passed = " + p
		if passed == 1 {
			set = ""
		}
		return d.rebind("INSERT INTO " + d.quote(s.t.ackedMsg) + " (clientid, msgid, topic, acked_at, passed) VALUES " + rows +
			d.onConflict([]string{"clientid", "msgid"}, set))
	})
}

// cursorSQL returns the upsert of n cursors (mqtt_acked rows): the
// highest acked ID and the watermark only move forward; with base, the
// passed range is set where the row's value for it is not NULL; without,
// on PostgreSQL and SQLite, it returns each row's topic and watermark.
func (s *Store) cursorSQL(n int, base bool) string {
	return s.cached("cursor:"+strconv.Itoa(n)+":"+strconv.FormatBool(base), func() string {
		d := s.d
		cols, k := "clientid, topic, mid, seq, created", 5
		set := "mid = " + d.greatest("COALESCE("+d.current(s.t.acked, "mid")+", '')", d.excluded("mid")) +
			", seq = " + d.greatest("COALESCE("+d.current(s.t.acked, "seq")+", 0)", d.excluded("seq")) +
			", created = " + d.excluded("created")
		if base {
			cols, k = cols+", base_seq, base_start", 7
			for _, c := range []string{"base_seq", "base_start"} {
				set += ", " + c + " = COALESCE(" + d.excluded(c) + ", " + d.current(s.t.acked, c) + ")"
			}
		}
		q := "INSERT INTO " + d.quote(s.t.acked) + " (" + cols + ") VALUES " + rowsOf(n, k) + d.onConflict([]string{"clientid", "topic"}, set)
		if !base && !d.hashKeys() {
			q += " RETURNING topic, seq"
		}
		return d.rebind(q)
	})
}

// touchCursors runs the upsert of n cursors (cursorSQL without base) with
// args, which moves nothing but locks the rows, and adds to fresh the
// topics whose watermark is 0 (on PostgreSQL and SQLite, which return it).
func (s *Store) touchCursors(ctx context.Context, tx *sql.Tx, n int, args []any, fresh map[string]bool) error {
	if s.d.hashKeys() {
		_, err := tx.ExecContext(ctx, s.cursorSQL(n, false), args...)
		return err
	}
	rows, err := tx.QueryContext(ctx, s.cursorSQL(n, false), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var seq sql.NullInt64
		if err := rows.Scan(&name, &seq); err != nil {
			return err
		}
		if seq.Int64 == 0 {
			fresh[name] = true
		}
	}
	return rows.Err()
}
