package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// PublishBefore is Publish as it was before fanout messages had positions
// (issue 9), for BenchmarkPublishBatch to compare in the same run: the same
// message hashes and registry, and per topic the one-key index script
// (IDs scored by expiry, in mqtt:topic:${topic}; queueIndexScript is that
// script, still used for queue indexes) — no counter, no expiry set, no
// notices.
func PublishBefore(ctx context.Context, s *Store, msgs ...*persist.Message) error {
	msgs, err := s.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	now := time.Now()
	type group struct {
		topic string
		args  []any // score, id, …
		max   float64
	}
	groups := map[string]*group{}
	var order []*group
	for _, m := range msgs {
		g := groups[m.Topic]
		if g == nil {
			g = &group{topic: m.Topic}
			groups[m.Topic] = g
			order = append(order, g)
		}
		sc := score(s.ttlAt(m, now))
		g.args = append(g.args, sc, m.ID)
		g.max = max(g.max, sc)
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
		var reg []any
		for _, g := range order {
			queueIndexScript.EvalSha(ctx, p, []string{s.k.prefix + ":topic:" + g.topic}, g.args...)
			reg = append(reg, g.max, g.topic)
		}
		r := s.k.fanTopics
		registerScript.EvalSha(ctx, p, []string{r.exp, r.lex}, append([]any{"gt"}, reg...)...)
	})
	return err
}
