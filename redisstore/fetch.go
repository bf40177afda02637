package redisstore

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// candidate is a message ID found in a topic index.
type candidate struct {
	id, topic string
}

// FetchOffline returns the stored messages of a mode whose topic matches
// filter. For a queue it reads the matching topics' indexes in one
// pipeline; for fanout it first reads, per matching topic, the client's
// watermark and acks above it (and the subscription's start), then the
// index from the watermark up — with a limit, a part at a time (twice the
// limit past the client's acks there; the next part only when the limit is
// not reached), so that a long backlog is not read whole for every page:
// a message stored late, far past the positions read, then comes in a
// later page rather than in ID order with this one. It orders the IDs and then reads the
// messages — or, for a queue, claims them with a script per message —
// FetchChunk at a time until Limit is reached; Query.Finish keeps those
// the fetch returns.
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
	var cands []candidate
	var fan *fanoutRead
	if queue {
		cands, err = s.queueCandidates(ctx, names, now)
	} else {
		fan = &fanoutRead{}
		cands, err = s.fanoutCandidates(ctx, q, names, fan)
	}
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
	var out []*persist.Message
	for (len(cands) > 0 || fan.more()) && !q.Full(len(out)) {
		if len(cands) == 0 {
			// The positions read so far are done with: read the next ones.
			if cands, err = s.fanoutCandidates(ctx, q, names, fan); err != nil {
				return nil, s.kit.Fail(ctx, op, err)
			}
			sort.Slice(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
			continue
		}
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

// queueCandidates reads the unexpired IDs of the topics' queue indexes.
func (s *Store) queueCandidates(ctx context.Context, names []string, now time.Time) ([]candidate, error) {
	ids := make([]*redis.StringSliceCmd, len(names))
	if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, n := range names {
			ids[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.k.queueKey(n), Start: nowArg(now), Stop: "+inf", ByScore: true})
		}
	}); err != nil {
		return nil, err
	}
	var cands []candidate
	for i, n := range names {
		for _, id := range ids[i].Val() {
			cands = append(cands, candidate{id: id, topic: n})
		}
	}
	return cands, nil
}

// fanoutCandidates reads, per topic, the client's watermark and its acks
// above it (and the subscription's start), then the index above the
// watermark and the IDs below it that the watermark passed unacked after
// the start (none when the fetch's filter is the subscription that made
// them not due), and returns the IDs after the start that the client has
// not acked.
func (s *Store) fanoutCandidates(ctx context.Context, q *storekit.Query, names []string, r *fanoutRead) ([]candidate, error) {
	if r.ws == nil {
		// The first read: watermarks, acks above them, the start.
		r.ws = make([]*redis.StringCmd, len(names))
		acked := make([]*redis.StringSliceCmd, len(names))
		var start *redis.StringCmd
		if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
			for i, n := range names {
				ck := s.k.cursorKeys(q.ClientID, n)
				r.ws[i] = p.Get(ctx, ck.w)
				acked[i] = p.ZRange(ctx, ck.acks, 0, -1)
			}
			start = p.HGet(ctx, s.k.subStartKey(q.ClientID), q.Filter)
		}); err != nil {
			return nil, err
		}
		r.lower = start.Val()
		r.done = make([]map[string]bool, len(names))
		r.offset = make([]int64, len(names))
		r.left = make([]bool, len(names))
		acks := 0
		for i := range names {
			r.left[i] = true
			if a := acked[i].Val(); len(a) > 0 {
				r.done[i] = make(map[string]bool, len(a))
				for _, id := range a {
					r.done[i][id] = true
				}
				acks += len(a)
			}
		}
		// With a limit, the positions above a watermark are read a part at
		// a time, enough for the limit past the client's acks there (and
		// as much again for IDs before the start), so that a long backlog
		// is not read whole for every page of it.
		if l := q.Fetch.Limit; l > 0 {
			r.count = int64(2*l + acks + 64)
		}
	}
	first := !r.read
	r.read = true
	from := "-"
	if r.lower != "" {
		from = "(" + r.lower
	}
	ids := make([]*redis.StringSliceCmd, len(names))
	passed := make([]*redis.StringSliceCmd, len(names))
	if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, n := range names {
			if !r.left[i] {
				continue
			}
			ids[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.k.fanoutKeys(n).idx, Start: "(" + watermark(r.ws[i]), Stop: "+inf",
				ByScore: true, Offset: r.offset[i], Count: r.count})
			if first {
				passed[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.k.cursorKeys(q.ClientID, n).passed, Start: from, Stop: "+", ByLex: true})
			}
		}
	}); err != nil {
		return nil, err
	}
	var cands []candidate
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	for i, n := range names {
		if !r.left[i] {
			continue
		}
		got := ids[i].Val()
		r.offset[i] += int64(len(got))
		r.left[i] = r.count > 0 && int64(len(got)) == r.count
		lists := [][]string{got}
		if first {
			lists = append(lists, passed[i].Val())
		}
		for _, list := range lists {
			for _, id := range list {
				if id > r.lower && !r.done[i][id] && !r.seen[id] {
					r.seen[id] = true
					cands = append(cands, candidate{id: id, topic: n})
				}
			}
		}
	}
	return cands, nil
}

// fanoutRead is what a fanout fetch has read of the topics' indexes: the
// watermarks and acks above them, and, when the positions are read a part
// at a time (a limit), how far.
type fanoutRead struct {
	read   bool
	ws     []*redis.StringCmd
	done   []map[string]bool // per topic, the IDs acked above the watermark
	lower  string            // the subscription's start
	count  int64             // positions per read per topic; 0: all
	offset []int64           // positions read so far per topic
	left   []bool            // the topic may have more positions
	seen   map[string]bool
}

// more reports whether a topic's index may hold positions not read yet.
func (r *fanoutRead) more() bool {
	if r == nil {
		return false
	}
	for _, l := range r.left {
		if l {
			return true
		}
	}
	return false
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
