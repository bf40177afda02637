package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/topic"
)

// nowArg is an exclusive lower score bound of "not expired at now".
func nowArg(now time.Time) string { return "(" + strconv.FormatInt(ms(now), 10) }

// topics returns the names in registry r that filter (without a $share
// prefix: Query.Match) matches and that have not expired — just the
// filter's one name when it has no wildcard. A filter with literal levels
// before its first wildcard (sensor/+/temp) reads only the names in that
// range (sensor up to sensor0, a superset of sensor and sensor/…); one
// starting with a wildcard reads them all.
func (s *Store) topics(ctx context.Context, r registry, filter string, now time.Time) ([]string, error) {
	if !topic.HasWildcard(filter) {
		return []string{topic.Prefix(filter)}, nil
	}
	var names []string
	var err error
	if p := topic.Prefix(filter); p != "" {
		var v any
		v, err = s.script(ctx, lookupScript, []string{r.exp, r.lex}, "["+p, "("+p+"0")
		for _, x := range asSlice(v) {
			if n, ok := x.(string); ok {
				names = append(names, n)
			}
		}
	} else {
		names, err = s.c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: r.exp, Start: nowArg(now), Stop: "+inf", ByScore: true}).Result()
	}
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if topic.Match(filter, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func asSlice(v any) []any {
	a, _ := v.([]any)
	return a
}

// script runs one script call (loading the scripts on NOSCRIPT).
func (s *Store) script(ctx context.Context, sc *redis.Script, keys []string, args ...any) (any, error) {
	var cmd *redis.Cmd
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		cmd = sc.EvalSha(ctx, p, keys, args...)
	})
	if err != nil {
		return nil, err
	}
	return cmd.Val(), nil
}
