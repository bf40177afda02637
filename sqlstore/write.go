package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// nullStr is NULL for "" (the seeds show NULL for what a broker did not
// say) and s otherwise.
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullTime is NULL for the zero time.
func (s *Store) nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.d.timeArg(t)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Connected upserts the client's row: state 1 or 0, node, username and peer
// host as given, online_at and offline_at where not zero; a connect (and a
// disconnect that applies) also sets changed to the database's clock (the
// polling watches read it) and, on PostgreSQL, notifies every watch in the
// same statement (a disconnect whether it applies or not). A disconnect is
// one upsert whose update applies only if the stored row is not online on
// another node (see buildQueries), so a disconnect from a node the client
// has left, arriving after its connect on another, changes nothing.
func (s *Store) Connected(ctx context.Context, c *persist.Client) error {
	if err := s.kit.Connected(ctx, c); err != nil {
		return err
	}
	unlock := s.lockWrites()
	defer unlock()
	q := s.q.connected
	if !c.Online {
		q = s.q.disconnected
	}
	args := []any{c.ID, boolInt(c.Online), nullStr(c.Node), nullStr(c.Username), nullStr(c.PeerHost),
		s.nullTime(c.OnlineAt), s.nullTime(c.OfflineAt), s.d.timeArg(time.Now())}
	if s.d.listens() {
		args = append(args, s.clientChannel(), clientNote(c))
	}
	_, err := s.db.ExecContext(ctx, q, args...)
	return s.kit.Fail(ctx, "Connected", err)
}

// Subscribed removes the filters in removed and then upserts subs (the last
// of several to one filter: one statement must not upsert a row twice) for
// one client in one transaction, keeping the fanout start of a filter
// subscribed again.
func (s *Store) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	uniq, err := s.kit.Subscribed(ctx, clientID, subs, removed)
	if err != nil || len(uniq) == 0 && len(removed) == 0 {
		return err
	}
	now := time.Now()
	unlock := s.lockWrites()
	defer unlock()
	err = s.inTx(ctx, nil, func(tx *sql.Tx) error {
		for len(removed) > 0 {
			n := min(len(removed), 500)
			var q strings.Builder
			q.WriteString("DELETE FROM " + s.d.quote(s.t.sub) + " WHERE ")
			var args []any
			if s.d.hashKeys() {
				q.WriteString(hashCol + " IN " + placeholders(n))
				for _, f := range removed[:n] {
					args = append(args, keyHash(clientID, f))
				}
			} else {
				q.WriteString("clientid = ? AND topic IN " + placeholders(n))
				args = append(args, clientID)
				for _, f := range removed[:n] {
					args = append(args, f)
				}
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind(q.String()), args...); err != nil {
				return err
			}
			removed = removed[n:]
		}
		for len(uniq) > 0 {
			n := min(len(uniq), 500)
			args := make([]any, 0, n*nSubCols)
			for i := range uniq[:n] {
				sub := &uniq[i]
				args = append(args, clientID, sub.Filter, int(sub.QoS), boolInt(sub.NoLocal), boolInt(sub.RetainAsPublished),
					int(sub.RetainHandling), sub.Identifier, storekit.Start(sub), s.d.timeArg(now))
			}
			if _, err := tx.ExecContext(ctx, s.subUpsertSQL(n), args...); err != nil {
				return err
			}
			uniq = uniq[n:]
		}
		return nil
	})
	return s.kit.Fail(ctx, "Subscribed", err)
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// encodeProps returns the JSON of p, or NULL when p carries nothing.
func encodeProps(p *persist.Properties) (any, error) {
	if p.IsZero() {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// Retain sets or replaces the retained message of m.Topic, or deletes it when the payload is empty.
func (s *Store) Retain(ctx context.Context, m *persist.Message) error {
	const op = "Retain"
	if err := s.kit.Retain(ctx, m); err != nil {
		return err
	}
	unlock := s.lockWrites()
	defer unlock()
	if len(m.Payload) == 0 {
		_, err := s.db.ExecContext(ctx, s.q.retainDelete, keyArgs(s.d, m.Topic)...)
		return s.kit.Fail(ctx, op, err)
	}
	props, err := encodeProps(&m.Props)
	if err != nil {
		return s.kit.Fail(ctx, op, s.kit.Error(op, persist.ErrInvalid, fmt.Sprintf("topic %q", m.Topic), fmt.Errorf("properties: %w", err)))
	}
	at := m.Time
	if at.IsZero() {
		at = time.Now()
	}
	_, err = s.db.ExecContext(ctx, s.q.retainUpsert, m.Topic, m.ID, nullStr(m.From), nullStr(m.Node), int(m.QoS), m.Payload,
		s.d.timeArg(at), s.nullTime(m.Expiry), props, nullStr(m.Username), nullStr(m.PeerHost))
	return s.kit.Fail(ctx, op, err)
}

// staleAckAfter is how long DeleteExpired keeps a row of mqtt_acked_msg
// whose message is not stored (an ack may come before its message, from
// an asynchronous pipeline) or is below the client's watermark (Acked
// deletes those itself; a row left by a race goes here).
const staleAckAfter = time.Hour

// DeleteExpired deletes the expired messages and retained messages (nothing
// else removes expired fanout messages) and the stale rows of
// mqtt_acked_msg (see the package doc's Ordering), and returns how many rows
// went.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	const op = "DeleteExpired"
	if err := s.kit.Enter(ctx, op); err != nil {
		return 0, err
	}
	unlock := s.lockWrites()
	defer unlock()
	now := time.Now()
	var total int64
	run := func(q string, arg any) error {
		res, err := s.db.ExecContext(ctx, q, arg)
		if err != nil {
			return s.kit.Fail(ctx, op, err)
		}
		n, _ := res.RowsAffected()
		total += n
		return nil
	}
	for _, t := range []string{s.t.msg, s.t.retain} {
		if err := run(s.d.rebind("DELETE FROM "+s.d.quote(t)+" WHERE expiry <= ?"), s.d.timeArg(now)); err != nil {
			return total, err
		}
	}
	if err := run(s.q.staleAcks, s.d.timeArg(now.Add(-staleAckAfter))); err != nil {
		return total, err
	}
	return total, nil
}

// staleAcksSQL returns DeleteExpired's delete of the rows of
// mqtt_acked_msg written before its parameter whose message is gone, or
// (acks) at or below the client's watermark.
func staleAcksSQL(s *Store) string {
	d := s.d
	am, msg := d.quote(s.t.ackedMsg), d.quote(s.t.msg)
	cursor := "a.clientid = " + am + ".clientid AND a.topic = " + am + ".topic"
	if d.hashKeys() {
		cursor = "a." + hashCol + " = " + hashExpr([]string{am + ".clientid", am + ".topic"})
	}
	return d.rebind("DELETE FROM " + am + " WHERE acked_at < ? AND (NOT EXISTS (SELECT 1 FROM " + msg + " m WHERE m.msgid = " + am + ".msgid)" +
		" OR passed = 0 AND EXISTS (SELECT 1 FROM " + msg + " m JOIN " + d.quote(s.t.acked) + " a ON " + cursor +
		" WHERE m.msgid = " + am + ".msgid AND m.topic = " + am + ".topic AND m.seq <= a.seq))")
}
