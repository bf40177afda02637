package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// ttlAt returns when a message written now expires in Redis: the earlier
// of its Expiry and now+ExpiredAfter; zero for never.
func (s *Store) ttlAt(m *persist.Message, now time.Time) time.Time {
	at := m.Expiry
	if s.ttl > 0 {
		if cap := now.Add(s.ttl); at.IsZero() || cap.Before(at) {
			at = cap
		}
	}
	return at
}

// Publish stores a batch (its unexpired messages, each ID once) in one
// pipeline: per message an HSET of
// mqtt:msg:${msgid} and its expiry; per topic and mode one script that adds
// the IDs to the topic's index; per mode one script that registers the
// topics for wildcard fetches.
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	const op = "Publish"
	msgs, err := s.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	now := time.Now()
	type group struct {
		queue bool
		topic string
		args  []any // score, id, …
		max   float64
	}
	groups := map[string]*group{}
	var order []*group
	for _, m := range msgs {
		q := m.Mode == persist.Queue
		gk := m.Mode.String() + "\x00" + m.Topic
		g := groups[gk]
		if g == nil {
			g = &group{queue: q, topic: m.Topic}
			groups[gk] = g
			order = append(order, g)
		}
		sc := score(s.ttlAt(m, now))
		g.args = append(g.args, sc, m.ID)
		if sc > g.max {
			g.max = sc
		}
	}
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for _, m := range msgs {
			key := s.k.msgKey(m.ID)
			p.HSet(ctx, key, messageFields(m, now)...)
			if at := s.ttlAt(m, now); !at.IsZero() {
				p.PExpireAt(ctx, key, at)
			} else {
				p.Persist(ctx, key)
			}
		}
		reg := map[bool][]any{}
		for _, g := range order {
			idx := s.k.indexKey(g.queue, g.topic)
			// unpack() in Lua takes a few thousand values at most.
			for i := 0; i < len(g.args); i += 2000 {
				indexScript.EvalSha(ctx, p, []string{idx}, g.args[i:min(i+2000, len(g.args))]...)
			}
			reg[g.queue] = append(reg[g.queue], g.max, g.topic)
		}
		for _, q := range []bool{false, true} {
			args := reg[q]
			for i := 0; i < len(args); i += 2000 {
				r := s.k.topicsKey(q)
				registerScript.EvalSha(ctx, p, []string{r.exp, r.lex}, append([]any{"gt"}, args[i:min(i+2000, len(args))]...)...)
			}
		}
	})
	return s.kit.Fail(ctx, op, err)
}
