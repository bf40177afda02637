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
