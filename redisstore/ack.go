package redisstore

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// Acked handles a batch of acks in two round trips: a script per ack on
// the message's hash deletes a queue message claimed by the client (and
// the ID leaves its topic index); every other ack moves the client's
// cursor mqtt:acked:${clientid}:${topic} forward, never back.
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	const op = "Acked"
	if err := s.kit.Acked(ctx, clientID, acks); err != nil || len(acks) == 0 {
		return err
	}
	res := make([]*redis.Cmd, len(acks))
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, a := range acks {
			res[i] = ackScript.EvalSha(ctx, p, []string{s.k.msgKey(a.ID)}, clientID)
		}
	})
	if err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	// 2: a queue message the client claimed, deleted; 0: not a queue
	// message, a fanout ack.
	done := make([]int, len(acks))
	var deleted []persist.Ack
	for i, a := range acks {
		if done[i], _ = res[i].Int(); done[i] == 2 {
			deleted = append(deleted, a)
		}
	}
	cursors := storekit.Cursors(acks, func(i int) bool { return done[i] == 0 })
	ttl := strconv.FormatInt(s.ttl.Milliseconds(), 10)
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for _, a := range deleted {
			p.ZRem(ctx, s.k.indexKey(true, a.Topic), a.ID)
		}
		for _, c := range cursors {
			cursorScript.EvalSha(ctx, p, []string{s.k.ackedKey(clientID, c.Topic)}, c.ID, ttl)
		}
	})
	return s.kit.Fail(ctx, op, err)
}
