package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/topic"
)

// Client returns the state stored in mqtt:client:${clientID}, or an error
// matching persist.ErrNotFound.
func (s *Store) Client(ctx context.Context, clientID string) (*persist.Client, error) {
	const op = "Client"
	if err := s.kit.Lookup(ctx, op, clientID); err != nil {
		return nil, err
	}
	h, err := s.c.HGetAll(ctx, s.k.clientKey(clientID)).Result()
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	if len(h) == 0 {
		return nil, s.kit.Fail(ctx, op, s.kit.Error(op, persist.ErrNotFound, "", fmt.Errorf("client %q: %w", clientID, persist.ErrNotFound)))
	}
	c := &persist.Client{
		ID:       clientID,
		Username: h[cUsername],
		PeerHost: h[cPeerHost],
		Node:     h[cNode],
		Online:   h[cState] == "1",
	}
	c.OnlineAt = clientTime(h, cOnlineAtMs, cOnlineAt)
	c.OfflineAt = clientTime(h, cOfflineAtMs, cOfflineAt)
	return c, nil
}

// clientTime reads a time of a client hash: the millisecond field, else the
// seeds' seconds ("undefined" or absent is zero).
func clientTime(h map[string]string, msField, secField string) time.Time {
	if t, ok := fromMs(h[msField]); ok {
		return t
	}
	if t, ok := fromSec(h[secField]); ok {
		return t
	}
	return time.Time{}
}

// Subscriptions returns a client's subscriptions from mqtt:sub:${clientID}
// and mqtt:subopt:${clientID}, ordered by filter byte-wise.
func (s *Store) Subscriptions(ctx context.Context, clientID string) ([]persist.Subscription, error) {
	const op = "Subscriptions"
	if err := s.kit.Lookup(ctx, op, clientID); err != nil {
		return nil, err
	}
	var subs, opts *redis.MapStringStringCmd
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		subs = p.HGetAll(ctx, s.k.subKey(clientID))
		opts = p.HGetAll(ctx, s.k.subOptKey(clientID))
	})
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	out := make([]persist.Subscription, 0, len(subs.Val()))
	for f, q := range subs.Val() {
		sub := persist.Subscription{Filter: f}
		if n, err := strconv.Atoi(q); err == nil && n >= 0 && n <= 2 {
			sub.QoS = byte(n)
		}
		if o, ok := opts.Val()[f]; ok {
			parseSubOptions(o, &sub)
		}
		out = append(out, sub)
	}
	storekit.SortSubscriptions(out)
	return out, nil
}

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

// candidate is a message ID found in a topic index.
type candidate struct {
	id, topic string
}

// FetchOffline returns the stored messages of a mode whose topic matches
// filter. It reads the matching topics' indexes (and for fanout the
// client's cursors and subscription start) in one pipeline, orders the IDs
// and then reads the messages — or, for a queue, claims them with a script
// per message — FetchChunk at a time until Limit is reached; Query.Finish
// keeps those the fetch returns.
func (s *Store) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	const op = "FetchOffline"
	q, err := s.kit.Fetch(ctx, clientID, filter, opt)
	if err != nil {
		return nil, err
	}
	queue := q.Fetch.Mode == persist.Queue
	now := q.Now
	names, err := s.topics(ctx, s.k.topicsKey(queue), q.Match, now)
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	// The topics' indexes, cursors and the subscription's start.
	ids := make([]*redis.StringSliceCmd, len(names))
	curs := make([]*redis.StringCmd, len(names))
	var start *redis.StringCmd
	if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, n := range names {
			ids[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.k.indexKey(queue, n), Start: nowArg(now), Stop: "+inf", ByScore: true})
			if !queue {
				curs[i] = p.Get(ctx, s.k.ackedKey(clientID, n))
			}
		}
		if !queue {
			start = p.HGet(ctx, s.k.subStartKey(clientID), q.Filter)
		}
	}); err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	lower := ""
	if start != nil {
		lower = start.Val()
	}
	var cands []candidate
	for i, n := range names {
		bound := lower
		if curs[i] != nil && curs[i].Val() > bound {
			bound = curs[i].Val()
		}
		for _, id := range ids[i].Val() {
			if id > bound {
				cands = append(cands, candidate{id: id, topic: n})
			}
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
	var out []*persist.Message
	for len(cands) > 0 && !q.Full(len(out)) {
		n := s.chunk
		if q.Fetch.Limit > 0 {
			n = min(n, q.Fetch.Limit-len(out))
		}
		part := cands[:min(n, len(cands))]
		cands = cands[len(part):]
		var got []*persist.Message
		if queue {
			got, err = s.claim(ctx, q, part)
		} else {
			got, err = s.read(ctx, part)
		}
		if err != nil {
			return nil, s.kit.Fail(ctx, op, err)
		}
		// What the fetch keeps of all read so far, in ID order.
		out = q.Finish(append(out, got...))
	}
	return out, nil
}

// read reads fanout messages, leaving out those gone or no longer fanout
// messages of that ID.
func (s *Store) read(ctx context.Context, part []candidate) ([]*persist.Message, error) {
	cmds := make([]*redis.MapStringStringCmd, len(part))
	if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, c := range part {
			cmds[i] = p.HGetAll(ctx, s.k.msgKey(c.id))
		}
	}); err != nil {
		return nil, err
	}
	out := make([]*persist.Message, 0, len(part))
	for i, c := range cmds {
		if m, ok := decodeMessage(c.Val()); ok && m.ID == part[i].id && m.Mode == persist.Fanout {
			out = append(out, m)
		}
	}
	return out, nil
}

// claim claims queue messages for q's client, each with the claim script
// (which leaves out those expired or older than q.Since on the server),
// and returns those it claimed.
func (s *Store) claim(ctx context.Context, q *storekit.Query, part []candidate) ([]*persist.Message, error) {
	lease := strconv.FormatInt(max(q.Fetch.Lease.Milliseconds(), 1), 10)
	sinceArg := "0"
	if !q.Since.IsZero() {
		sinceArg = strconv.FormatInt(ms(q.Since), 10)
	}
	cmds := make([]*redis.Cmd, len(part))
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, c := range part {
			cmds[i] = claimScript.EvalSha(ctx, p, []string{s.k.msgKey(c.id)}, q.ClientID, lease, sinceArg)
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]*persist.Message, 0, len(part))
	for _, c := range cmds {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		h, ok := pairs(v)
		if !ok {
			continue
		}
		if m, ok := decodeMessage(h); ok {
			out = append(out, m)
		}
	}
	return out, nil
}
