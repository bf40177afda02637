package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

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
		m, err := scanRetained(rows)
		if err != nil {
			return nil, s.kit.Fail(ctx, op, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	return fq.FinishRetained(out), nil
}
