package redisstore

import (
	"context"
	"errors"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

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
