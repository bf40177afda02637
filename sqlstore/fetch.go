package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/topic"
)

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

// common appends the conditions every fetch of fq shares to q and args;
// id is the message ID's expression in its bound by after.
func (s *Store) common(q *strings.Builder, args []any, fq *storekit.Query, id, after string) []any {
	q.WriteString(" AND (m.expiry IS NULL OR m.expiry > ?)")
	args = append(args, s.d.timeArg(fq.Now))
	if !fq.Since.IsZero() {
		q.WriteString(" AND m.arrived >= ?")
		args = append(args, s.d.timeArg(fq.Since))
	}
	q.WriteString(" AND " + id + " > ?")
	return append(args, after)
}

// fanout reads the client's fanout messages after the start of its
// subscription to the filter: those after its watermark of their topic
// (mqtt_acked.seq) that it has not acked (mqtt_acked_msg), and those at or
// below it that it passed unacked: in the cursor's range (mqtt_acked
// base_seq and base_start, see base; an index range of IDs from the
// start to base_start: none for a filter whose subscription made them not
// due) and as rows with passed 1 (read from the (clientid, msgid) index
// after the start).
func (s *Store) fanout(ctx context.Context, fq *storekit.Query) ([]*persist.Message, error) {
	d := s.d
	nw := topicNarrow("m.topic", fq.Match)
	one := !topic.HasWildcard(fq.Match)
	limit := fq.Fetch.Limit
	msg := d.quote(s.t.msg)
	start := "COALESCE((SELECT sb.start_id FROM " + d.quote(s.t.sub) + " sb WHERE " + keyCond(d, "sb", "clientid", "topic") + "), '')"
	startArgs := keyArgs(d, fq.ClientID, fq.Filter)
	var out []*persist.Message
	after := ""
	var db querier = s.db
	// The watermark of a filter without wildcards.
	w := "COALESCE((SELECT a.seq FROM " + d.quote(s.t.acked) + " a WHERE " + keyCond(d, "a", "clientid", "topic") + "), 0)"
	wArgs := keyArgs(d, fq.ClientID, fq.Match)
	if one && d.hashKeys() {
		// MySQL plans a scalar subquery bound row by row: the watermark
		// is read first and bound as a constant, and the pages read the
		// same snapshot (InnoDB's REPEATABLE READ): an Acked that moves
		// the watermark meanwhile, deleting the ack rows it passes, is not
		// half seen.
		tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		db = tx
		watermark := int64(0)
		rows, err := db.QueryContext(ctx, d.rebind("SELECT "+w), wArgs...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			err = rows.Scan(&watermark)
		}
		if err = errors.Join(err, rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
		w, wArgs = "?", []any{watermark}
	}
	for {
		var q strings.Builder
		var args []any
		id := "m.msgid" // the ID in the strict bounds
		q.WriteString("SELECT * FROM (SELECT " + msgColsM + " FROM " + msg + " m")
		if !one {
			q.WriteString(" LEFT JOIN " + d.quote(s.t.acked) + " a ON ")
			if d.hashKeys() {
				q.WriteString("a." + hashCol + " = " + hashExpr([]string{"?", "m.topic"}))
			} else {
				q.WriteString("a.clientid = ? AND a.topic = m.topic")
			}
			args = append(args, fq.ClientID)
		}
		q.WriteString(" WHERE m.mode = 0 AND " + nw.sql)
		args = append(args, nw.args...)
		if one {
			// After the watermark (SQLite: a filter; see below).
			q.WriteString(" AND " + d.filterOnly("m.seq") + " > " + w)
			args = append(args, wArgs...)
			// The rows are read as one range of the (topic, msgid) index,
			// from the greatest of three lower bounds: the lowest ID above
			// the watermark (the range then starts at the cursor, not at
			// the topic's acknowledged history), the page's last ID and the
			// start; the strict bounds below are filters then (SQLite reads
			// one bound of a range, and took the page's: '', the topic's
			// whole past). A client without a watermark (new to the topic)
			// needs no first bound — every row is above it — and its MIN
			// would read the topic's whole past
			// (FetchOffline100/NewSubscriberAfterHistory50k): the CASE
			// leaves the subquery unread then.
			lo := "CASE WHEN " + w + " > 0 THEN (SELECT MIN(f.msgid) FROM " + msg + " f WHERE f.topic = ? AND f.mode = 0 AND f.seq > " + w + ") ELSE '' END"
			q.WriteString(" AND m.msgid >= " + d.greatest(d.greatest(lo, "?"), start))
			args = append(args, wArgs...)
			args = append(args, fq.Match)
			args = append(args, wArgs...)
			args = append(args, after)
			args = append(args, startArgs...)
			id = d.filterOnly("m.msgid")
		} else {
			q.WriteString(" AND (m.seq > COALESCE(a.seq, 0) OR m.seq <= a.base_seq AND m.msgid <= a.base_start)")
		}
		q.WriteString(" AND " + s.unackedCond())
		args = append(args, fq.ClientID)
		args = s.common(&q, args, fq, id, after)
		q.WriteString(" AND " + id + " > " + start)
		args = append(args, startArgs...)

		if one {
			// The range the watermark passed: IDs from the start (and the
			// page's last) up to base_start, read from the cursor first:
			// its row gates the messages, so the subscription whose start
			// made the range reads none, whatever the plan.
			q.WriteString(" UNION ALL SELECT " + msgColsM + " FROM " + d.quote(s.t.acked) + " a CROSS JOIN " + msg + " m WHERE " + keyCond(d, "a", "clientid", "topic"))
			args = append(args, keyArgs(d, fq.ClientID, fq.Match)...)
			q.WriteString(" AND a.base_start > " + start + " AND m.topic = a.topic AND m.mode = 0")
			args = append(args, startArgs...)
			q.WriteString(" AND m.msgid > " + d.greatest("?", start) + " AND m.msgid <= a.base_start AND m.seq + 0 <= a.base_seq AND " + s.unackedCond())
			args = append(args, after)
			args = append(args, startArgs...)
			args = append(args, fq.ClientID)
			args = s.common(&q, args, fq, d.filterOnly("m.msgid"), after)
		}
		// The messages passed unacked as rows, read from the client's
		// rows first (CROSS JOIN: SQLite keeps that order; it would
		// otherwise read the topic's messages and look each up).
		q.WriteString(" UNION ALL SELECT " + msgColsM + " FROM " + d.quote(s.t.ackedMsg) + " x CROSS JOIN " + msg + " m WHERE m.msgid = x.msgid AND x.clientid = ? AND x.passed = 1 AND x.msgid > " + start)
		args = append(args, fq.ClientID)
		args = append(args, startArgs...)
		q.WriteString(" AND m.mode = 0 AND " + nw.sql)
		args = append(args, nw.args...)
		args = s.common(&q, args, fq, "m.msgid", after)
		q.WriteString(") u ORDER BY u.msgid")
		page := pageSize(limit, len(out), nw.exact)
		if page > 0 {
			q.WriteString(" LIMIT " + strconv.Itoa(page))
		}
		last, more, err := s.scanInto(ctx, db, d.rebind(q.String()), args, page, fq, limit, &out)
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
