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
// host as given, online_at and offline_at where not zero. A disconnect is
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
	_, err := s.db.ExecContext(ctx, q, c.ID, boolInt(c.Online), nullStr(c.Node), nullStr(c.Username), nullStr(c.PeerHost),
		s.nullTime(c.OnlineAt), s.nullTime(c.OfflineAt), s.d.timeArg(time.Now()))
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

// Publish stores the unexpired messages of a batch with one multi-row INSERT
// (split by Options.BatchRows and BatchBytes), ignoring IDs already stored, or
// rejects the whole batch if a message is invalid.
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	keep, err := s.kit.Publish(ctx, msgs)
	if err != nil || len(keep) == 0 {
		return err
	}
	now := time.Now()
	// Chunks by rows and payload bytes.
	var chunks [][]*persist.Message
	start, bytes := 0, 0
	for i, m := range keep {
		if i > start && (i-start >= s.opt.BatchRows || bytes+len(m.Payload) > s.opt.BatchBytes) {
			chunks = append(chunks, keep[start:i])
			start, bytes = i, 0
		}
		bytes += len(m.Payload)
	}
	chunks = append(chunks, keep[start:])

	unlock := s.lockWrites()
	defer unlock()
	if len(chunks) == 1 {
		return s.kit.Fail(ctx, "Publish", s.insertChunk(ctx, s.db, chunks[0], now))
	}
	err = s.inTx(ctx, nil, func(tx *sql.Tx) error {
		for _, c := range chunks {
			if err := s.insertChunk(ctx, tx, c, now); err != nil {
				return err
			}
		}
		return nil
	})
	return s.kit.Fail(ctx, "Publish", err)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) insertChunk(ctx context.Context, db execer, msgs []*persist.Message, now time.Time) error {
	args := make([]any, 0, len(msgs)*nMsgCols)
	for _, m := range msgs {
		payload := m.Payload
		if payload == nil {
			payload = []byte{}
		}
		props, err := encodeProps(&m.Props)
		if err != nil {
			return err
		}
		at := m.Time
		if at.IsZero() {
			at = now
		}
		args = append(args, m.ID, m.Topic, nullStr(m.From), nullStr(m.Node), int(m.QoS), boolInt(m.Retain), payload,
			s.d.timeArg(at), s.nullTime(m.Expiry), int(m.Mode), nullStr(m.Username), nullStr(m.PeerHost), props)
	}
	_, err := db.ExecContext(ctx, s.insertSQL(len(msgs)), args...)
	return err
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

// Acked deletes the acked queue messages claimed by clientID and moves its
// cursor of each other ack's topic forward, in one transaction.
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	if err := s.kit.Acked(ctx, clientID, acks); err != nil || len(acks) == 0 {
		return err
	}
	now := time.Now()
	unlock := s.lockWrites()
	defer unlock()
	err := s.inTx(ctx, nil, func(tx *sql.Tx) error {
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
				return err
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				queue[id] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			rest = rest[n:]
		}
		if len(queue) > 0 {
			ids := make([]any, 0, len(queue)+1)
			ids = append(ids, clientID)
			for id := range queue {
				ids = append(ids, id)
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind("DELETE FROM "+msg+" WHERE mode = 1 AND claimed_by = ? AND msgid IN "+placeholders(len(ids)-1)), ids...); err != nil {
				return err
			}
		}
		// Fanout: the highest acked ID per topic, in topic order.
		cursors := storekit.Cursors(acks, func(i int) bool { return !queue[acks[i].ID] })
		for len(cursors) > 0 {
			n := min(len(cursors), 500)
			args := make([]any, 0, n*4)
			for _, c := range cursors[:n] {
				args = append(args, clientID, c.Topic, c.ID, s.d.timeArg(now))
			}
			if _, err := tx.ExecContext(ctx, s.ackUpsertSQL(n), args...); err != nil {
				return err
			}
			cursors = cursors[n:]
		}
		return nil
	})
	return s.kit.Fail(ctx, "Acked", err)
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

// DeleteExpired deletes the expired messages and retained messages (nothing
// else removes expired fanout messages) and returns how many rows went.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	const op = "DeleteExpired"
	if err := s.kit.Enter(ctx, op); err != nil {
		return 0, err
	}
	unlock := s.lockWrites()
	defer unlock()
	now := s.d.timeArg(time.Now())
	var total int64
	for _, t := range []string{s.t.msg, s.t.retain} {
		res, err := s.db.ExecContext(ctx, s.d.rebind("DELETE FROM "+s.d.quote(t)+" WHERE expiry <= ?"), now)
		if err != nil {
			return total, s.kit.Fail(ctx, op, err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
