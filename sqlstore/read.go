package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// narrow is the SQL condition that narrows the rows a filter may match;
// exact says it matches exactly the right topics, so that no row read is
// dropped in Go.
type narrow struct {
	sql   string
	args  []any
	exact bool
}

// likeEscape is the LIKE escape character, the same in every dialect (a
// backslash would need escaping in MySQL string literals but not in the
// others).
const likeEscape = '!'

// topicNarrow returns the condition on the topic column col for the
// (non-shared) filter f: equality for a filter without wildcards, else an
// index range over the literal levels before the first wildcard (plus the
// parent for "a/#", which matches "a" [MQTT-4.7.1-2]) and a LIKE pattern
// for what follows. Matching is then finished with topic.Match.
func topicNarrow(col, f string) narrow {
	i := strings.IndexAny(f, "+#")
	if i < 0 {
		return narrow{sql: col + " = ?", args: []any{f}, exact: true}
	}
	lit, rest := f[:i], f[i:]
	var conds []string
	var args []any
	exact := false
	if lit != "" { // lit ends with '/'
		hi := lit[:len(lit)-1] + "0" // '0' follows '/'
		rng := col + " >= ? AND " + col + " < ?"
		if rest == "#" {
			exact = true
			if parent := lit[:len(lit)-1]; parent != "" {
				conds = append(conds, "("+col+" = ? OR ("+rng+"))")
				args = append(args, parent, lit, hi)
			} else {
				conds = append(conds, rng)
				args = append(args, lit, hi)
			}
		} else {
			conds = append(conds, rng)
			args = append(args, lit, hi)
		}
	}
	if strings.Trim(rest, "+#/") != "" {
		conds = append(conds, col+" LIKE ? ESCAPE '"+string(likeEscape)+"'")
		args = append(args, likePattern(f))
	}
	if len(conds) == 0 {
		return narrow{sql: "1 = 1", exact: false}
	}
	return narrow{sql: strings.Join(conds, " AND "), args: args, exact: exact}
}

// likePattern returns a LIKE pattern that every topic matching the filter
// f matches: '+' becomes '%', a final "/#" (or a lone "#") '%', and literal
// '%', '_' and the escape character are escaped.
func likePattern(f string) string {
	var b strings.Builder
	if f == "#" {
		return "%"
	}
	f, hash := strings.CutSuffix(f, "/#")
	for _, c := range []byte(f) {
		switch c {
		case '+':
			b.WriteByte('%')
		case '%', '_', likeEscape:
			b.WriteByte(likeEscape)
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	if hash {
		b.WriteByte('%')
	}
	return b.String()
}

// FetchOffline returns the stored messages for clientID whose topic matches
// filter, in ID order, as persist.Store says (queue messages are claimed for
// clientID; see the package doc).
func (s *Store) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	q, err := s.kit.Fetch(ctx, clientID, filter, opt)
	if err != nil {
		return nil, err
	}
	// Times are stored to the microsecond (truncated): the bound is too,
	// so that Go keeps what the SQL bound on the stored time let through.
	q.Since = q.Since.Truncate(time.Microsecond)
	var out []*persist.Message
	if opt.Mode == persist.Queue {
		out, err = s.claim(ctx, q)
	} else {
		out, err = s.fanout(ctx, q)
	}
	if err != nil {
		return nil, s.kit.Fail(ctx, "FetchOffline", err)
	}
	return out, nil
}

// pageSize is how many rows one query of a fetch reads: the messages still
// wanted, or more when Go drops rows the SQL narrowing let through; 0 means
// all.
func pageSize(limit, have int, exact bool) int {
	if limit == 0 {
		return 0
	}
	n := limit - have
	if !exact {
		n = max(n, 256)
	}
	return n
}

// common appends the conditions every fetch of fq shares to q and args.
func (s *Store) common(q *strings.Builder, args []any, fq *storekit.Query, after string) []any {
	q.WriteString(" AND (m.expiry IS NULL OR m.expiry > ?)")
	args = append(args, s.d.timeArg(fq.Now))
	if !fq.Since.IsZero() {
		q.WriteString(" AND m.arrived >= ?")
		args = append(args, s.d.timeArg(fq.Since))
	}
	q.WriteString(" AND m.msgid > ?")
	return append(args, after)
}

func (s *Store) fanout(ctx context.Context, fq *storekit.Query) ([]*persist.Message, error) {
	d := s.d
	nw := topicNarrow("m.topic", fq.Match)
	limit := fq.Fetch.Limit
	var out []*persist.Message
	after := ""
	for {
		var q strings.Builder
		var args []any
		q.WriteString("SELECT " + msgColsM + " FROM " + d.quote(s.t.msg) + " m LEFT JOIN " + d.quote(s.t.acked) + " a ON ")
		if d.hashKeys() {
			q.WriteString("a." + hashCol + " = " + hashExpr([]string{"?", "m.topic"}))
		} else {
			q.WriteString("a.clientid = ? AND a.topic = m.topic")
		}
		args = append(args, fq.ClientID)
		q.WriteString(" WHERE m.mode = 0 AND " + nw.sql)
		args = append(args, nw.args...)
		q.WriteString(" AND (a.mid IS NULL OR m.msgid > a.mid)")
		args = s.common(&q, args, fq, after)
		// The start of the client's stored subscription to exactly filter.
		q.WriteString(" AND m.msgid > COALESCE((SELECT sb.start_id FROM " + d.quote(s.t.sub) + " sb WHERE " + keyCond(d, "sb", "clientid", "topic") + "), '')")
		args = append(args, keyArgs(d, fq.ClientID, fq.Filter)...)
		q.WriteString(" ORDER BY m.msgid")
		page := pageSize(limit, len(out), nw.exact)
		if page > 0 {
			q.WriteString(" LIMIT " + strconv.Itoa(page))
		}
		last, more, err := s.scanInto(ctx, s.db, d.rebind(q.String()), args, page, fq, limit, &out)
		if err != nil {
			return nil, err
		}
		if !more || fq.Full(len(out)) {
			return out, nil
		}
		after = last
	}
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// scanInto runs a message query and appends to out the messages fq keeps
// (the topic matches, not expired, not before Since), until out holds limit
// messages (0: no limit). It returns the last row's ID and whether rows may
// follow it (the page was full or reading stopped at the limit).
func (s *Store) scanInto(ctx context.Context, db querier, q string, args []any, page int, fq *storekit.Query, limit int, out *[]*persist.Message) (string, bool, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return "", false, err
	}
	defer rows.Close()
	n, last := 0, ""
	for rows.Next() {
		if limit > 0 && len(*out) >= limit {
			return last, true, nil
		}
		m, err := scanMessage(rows)
		if err != nil {
			return last, false, err
		}
		n++
		last = m.ID
		if fq.Keep(m) {
			*out = append(*out, m)
		}
	}
	return last, page > 0 && n >= page, rows.Err()
}

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
		args = s.common(&q, args, fq, after)
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

// scanMessage reads one row of msgCols.
func scanMessage(rows *sql.Rows) (*persist.Message, error) {
	var (
		id, tp, sender, node, user, peer, props sql.NullString
		qos, ret, mode                          sql.NullInt64
		payload                                 []byte
		arrived, expiry                         any
	)
	if err := rows.Scan(&id, &tp, &sender, &node, &qos, &ret, &payload, &arrived, &expiry, &mode, &user, &peer, &props); err != nil {
		return nil, err
	}
	m := &persist.Message{
		ID: id.String, Topic: tp.String, From: sender.String, Node: node.String,
		QoS: byte(qos.Int64), Retain: ret.Int64 != 0, Payload: payload,
		Mode: persist.Mode(mode.Int64), Username: user.String, PeerHost: peer.String,
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	var err error
	if m.Time, err = toTime(arrived); err != nil {
		return nil, fmt.Errorf("message %s: arrived: %w", m.ID, err)
	}
	if m.Expiry, err = toTime(expiry); err != nil {
		return nil, fmt.Errorf("message %s: expiry: %w", m.ID, err)
	}
	if props.Valid && props.String != "" {
		if err := json.Unmarshal([]byte(props.String), &m.Props); err != nil {
			return nil, fmt.Errorf("message %s: props: %w", m.ID, err)
		}
	}
	return m, nil
}

// timeLayouts are the text forms of stored times (UTC wall clock).
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-07:00",
}

// toTime turns a scanned time column into an instant. Columns hold the UTC
// wall clock, whatever location a driver attaches to it.
func toTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC), nil
	case []byte:
		return parseTime(string(t))
	case string:
		return parseTime(t)
	}
	return time.Time{}, fmt.Errorf("unexpected time value %T", v)
}

func parseTime(s string) (time.Time, error) {
	if s == "" || strings.HasPrefix(s, "0000-00-00") {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unexpected time %q", s)
}

// Client returns the stored state of a client, or an error matching persist.ErrNotFound.
func (s *Store) Client(ctx context.Context, clientID string) (*persist.Client, error) {
	const op = "Client"
	if err := s.kit.Lookup(ctx, op, clientID); err != nil {
		return nil, err
	}
	var (
		id, state, node, user, peer sql.NullString
		on, off                     any
	)
	err := s.db.QueryRowContext(ctx, s.q.client, keyArgs(s.d, clientID)...).Scan(&id, &state, &node, &user, &peer, &on, &off)
	if err == nil && id.String != clientID {
		err = sql.ErrNoRows
	}
	if errors.Is(err, sql.ErrNoRows) {
		err = s.kit.Error(op, persist.ErrNotFound, fmt.Sprintf("client %q", clientID), nil)
	}
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	c := &persist.Client{ID: id.String, Node: node.String, Username: user.String, PeerHost: peer.String,
		Online: strings.TrimSpace(state.String) == "1"}
	if c.OnlineAt, err = toTime(on); err == nil {
		c.OfflineAt, err = toTime(off)
	}
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	return c, nil
}

// Subscriptions returns a client's stored subscriptions ordered by filter
// byte-wise (History is not stored and comes back false).
func (s *Store) Subscriptions(ctx context.Context, clientID string) ([]persist.Subscription, error) {
	const op = "Subscriptions"
	if err := s.kit.Lookup(ctx, op, clientID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q.subList, clientID)
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	defer rows.Close()
	var out []persist.Subscription
	for rows.Next() {
		var id, filter sql.NullString
		var qos, nl, rap, rh, sid sql.NullInt64
		if err := rows.Scan(&id, &filter, &qos, &nl, &rap, &rh, &sid); err != nil {
			return nil, s.kit.Fail(ctx, op, err)
		}
		if id.String != clientID {
			continue // a collation that pads or folds (seed tables)
		}
		out = append(out, persist.Subscription{Filter: filter.String, QoS: byte(qos.Int64), NoLocal: nl.Int64 != 0,
			RetainAsPublished: rap.Int64 != 0, RetainHandling: byte(rh.Int64), Identifier: int(sid.Int64)})
	}
	if err := rows.Err(); err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	storekit.SortSubscriptions(out)
	return out, nil
}

// Retained returns the unexpired retained messages whose topic matches filter,
// ordered by topic byte-wise.
func (s *Store) Retained(ctx context.Context, filter string) ([]*persist.Message, error) {
	const op = "Retained"
	fq, err := s.kit.Retained(ctx, filter)
	if err != nil {
		return nil, err
	}
	nw := topicNarrow("r.topic", fq.Match)
	q := s.d.rebind("SELECT " + retainCols + " FROM " + s.d.quote(s.t.retain) + " r WHERE " + nw.sql +
		" AND (r.expiry IS NULL OR r.expiry > ?)")
	rows, err := s.db.QueryContext(ctx, q, append(nw.args, s.d.timeArg(fq.Now))...)
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	defer rows.Close()
	var out []*persist.Message
	for rows.Next() {
		var (
			tp, id, sender, node, props, user, peer sql.NullString
			qos                                     sql.NullInt64
			payload                                 []byte
			arrived, expiry                         any
		)
		if err := rows.Scan(&tp, &id, &sender, &node, &qos, &payload, &arrived, &expiry, &props, &user, &peer); err != nil {
			return nil, s.kit.Fail(ctx, op, err)
		}
		m := &persist.Message{Topic: tp.String, ID: id.String, From: sender.String, Node: node.String, QoS: byte(qos.Int64),
			Payload: payload, Retain: true, Username: user.String, PeerHost: peer.String}
		if m.Payload == nil {
			m.Payload = []byte{}
		}
		if m.Time, err = toTime(arrived); err == nil {
			m.Expiry, err = toTime(expiry)
		}
		if err == nil && props.Valid && props.String != "" {
			err = json.Unmarshal([]byte(props.String), &m.Props)
		}
		if err != nil {
			return nil, s.kit.Fail(ctx, op, fmt.Errorf("retained %q: %w", m.Topic, err))
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	return fq.FinishRetained(out), nil
}
