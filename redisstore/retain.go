package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Retain sets or replaces mqtt:retain:${topic} with every field of m (and
// registers the topic for wildcard lookups) with a script; an empty
// payload, or an expired m, deletes it.
func (s *Store) Retain(ctx context.Context, m *persist.Message) error {
	const op = "Retain"
	if err := s.kit.Retain(ctx, m); err != nil {
		return err
	}
	now := time.Now()
	key := s.k.retainKey(m.Topic)
	_, err := s.run(ctx, true, func(p redis.Pipeliner) {
		r := s.k.retainTopics
		if len(m.Payload) == 0 || m.Expired(now) {
			p.Del(ctx, key)
			unregisterScript.EvalSha(ctx, p, []string{r.exp, r.lex}, m.Topic)
			return
		}
		var at int64
		if !m.Expiry.IsZero() {
			at = ms(m.Expiry)
		}
		replaceScript.EvalSha(ctx, p, []string{key}, append([]any{at}, messageFields(m, now)...)...)
		registerScript.EvalSha(ctx, p, []string{r.exp, r.lex}, "set", score(m.Expiry), m.Topic)
	})
	return s.kit.Fail(ctx, op, err)
}

// Retained returns the retained messages whose topic matches filter,
// ordered by topic (Query.FinishRetained): one HGETALL of
// mqtt:retain:${filter} for a filter without wildcards, else the
// registry's topics that match, read in one pipeline.
func (s *Store) Retained(ctx context.Context, filter string) ([]*persist.Message, error) {
	const op = "Retained"
	q, err := s.kit.Retained(ctx, filter)
	if err != nil {
		return nil, err
	}
	names, err := s.topics(ctx, s.k.retainTopics, q.Match, q.Now)
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	var out []*persist.Message
	for i := 0; i < len(names); i += s.chunk {
		part := names[i:min(i+s.chunk, len(names))]
		cmds := make([]*redis.MapStringStringCmd, len(part))
		if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
			for j, n := range part {
				cmds[j] = p.HGetAll(ctx, s.k.retainKey(n))
			}
		}); err != nil {
			return nil, s.kit.Fail(ctx, op, err)
		}
		for j, c := range cmds {
			if m, ok := decodeMessage(c.Val()); ok && m.Topic == part[j] {
				out = append(out, m)
			}
		}
	}
	return q.FinishRetained(out), nil
}
