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
)

// candidate is a message ID found in a topic index.
type candidate struct {
	id, topic string
}

// FetchOffline returns the stored messages of a mode whose topic matches
// filter. For a queue it reads the matching topics' indexes in one
// pipeline; for fanout it first reads, per matching topic, the client's
// watermark, acks above it and base (and the subscription's start), then
// the index from the watermark up (or, for a new subscriber on a topic
// with a past, the IDs after its start: see fanoutCandidates) — with a
// limit, a part at a time (twice the
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

// fanoutCandidates reads, per topic, the client's watermark, its acks
// above it and its base (and the subscription's start), then
// (fetchIndexScript) the IDs above the watermark — by position, or from
// the start by ID when that reads fewer — and, on the first read, the
// IDs below it that the watermark passed unacked after the start: those
// of the passed set, and those of the base that the client did not ack
// (none when the fetch's start is at or after the base's, as when the
// filter is the subscription that made them not due), and returns the IDs
// after the start that the client has not acked.
func (s *Store) fanoutCandidates(ctx context.Context, q *storekit.Query, names []string, r *fanoutRead) ([]candidate, error) {
	if r.topics == nil {
		// The first read: watermarks, acks above them, bases, the start.
		r.topics = make([]fanoutTopic, len(names))
		acked := make([]*redis.StringSliceCmd, len(names))
		bases := make([]*redis.SliceCmd, len(names))
		var start *redis.StringCmd
		if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
			for i, n := range names {
				ck := s.k.cursorKeys(q.ClientID, n)
				r.topics[i].w = p.Get(ctx, ck.w)
				acked[i] = p.ZRange(ctx, ck.acks, 0, -1)
				bases[i] = p.HMGet(ctx, ck.base, "from", "to", "start")
			}
			start = p.HGet(ctx, s.k.subStartKey(q.ClientID), q.Filter)
		}); err != nil {
			return nil, err
		}
		r.lower = start.Val()
		acks := 0
		for i := range names {
			t := &r.topics[i]
			t.left = true
			t.base = baseOf(bases[i])
			if a := acked[i].Val(); len(a) > 0 {
				t.done = make(map[string]bool, len(a))
				for _, id := range a {
					t.done[id] = true
				}
				acks += len(a)
			}
		}
		// With a limit, the IDs above a watermark are read a part at a
		// time, enough for the limit past the client's acks there (and as
		// much again for IDs before the start), so that a long backlog is
		// not read whole for every page of it.
		if l := q.Fetch.Limit; l > 0 {
			r.count = int64(2*l + acks + 64)
		}
		r.seen = map[string]bool{}
	}
	first := !r.read
	r.read = true
	from := "-"
	if r.lower != "" {
		from = "(" + r.lower
	}
	idx := make([]*redis.Cmd, len(names))
	passed := make([]*redis.StringSliceCmd, len(names))
	kept := make([]*redis.StringSliceCmd, len(names))
	if _, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, n := range names {
			t := &r.topics[i]
			if !t.left {
				continue
			}
			var bf, bt, bs string
			if first {
				ck := s.k.cursorKeys(q.ClientID, n)
				passed[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: ck.passed, Start: from, Stop: "+", ByLex: true})
				// The base holds IDs after the fetch's start only when
				// that is before the base's.
				if b := t.base; b.ok && (r.lower == "" || r.lower < b.start) {
					bf, bt, bs = b.from, b.to, b.start
					kept[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: ck.kept, Start: from, Stop: "[" + b.start, ByLex: true})
				}
			}
			fk := s.k.fanoutKeys(n)
			idx[i] = fetchIndexScript.EvalSha(ctx, p, []string{fk.idx, fk.ids}, watermark(t.w), r.lower, t.mode, t.next, r.count, bf, bt, bs)
		}
	}); err != nil {
		return nil, err
	}
	var cands []candidate
	for i, n := range names {
		t := &r.topics[i]
		if !t.left {
			continue
		}
		got, err := indexResult(idx[i])
		if err != nil {
			return nil, err
		}
		t.mode, t.next, t.left = got.mode, got.next, got.more
		lists := [][]string{got.ids}
		var keep map[string]bool
		if first {
			lists = append(lists, passed[i].Val())
			if kept[i] != nil {
				if k := kept[i].Val(); len(k) > 0 {
					keep = make(map[string]bool, len(k))
					for _, id := range k {
						keep[id] = true
					}
				}
				lists = append(lists, got.base)
			}
		}
		for _, list := range lists {
			for _, id := range list {
				if id > r.lower && !t.done[id] && !keep[id] && !r.seen[id] {
					r.seen[id] = true
					cands = append(cands, candidate{id: id, topic: n})
				}
			}
		}
	}
	return cands, nil
}

// fanoutRead is what a fanout fetch has read of the topics' indexes: per
// topic the watermark, acks above it and base, and, when the IDs are read
// a part at a time (a limit), how far.
type fanoutRead struct {
	read   bool
	topics []fanoutTopic
	lower  string // the subscription's start
	count  int64  // IDs per read per topic; 0: all
	seen   map[string]bool
}

// fanoutTopic is what a fanout fetch has read of one topic.
type fanoutTopic struct {
	w    *redis.StringCmd
	done map[string]bool // the IDs acked above the watermark
	base base
	mode string // how the index is read: "" (not yet), "p" by position, "l" by ID
	next string // where the next part starts (see fetchIndexScript)
	left bool   // the topic may have more IDs to read
}

// base is a client's base of a topic as read (see advance): the messages
// at positions in (from, to] with IDs at or before start.
type base struct {
	ok              bool
	from, to, start string
}

// baseOf reads a base from an HMGET of from, to and start.
func baseOf(c *redis.SliceCmd) base {
	v := c.Val()
	if len(v) != 3 {
		return base{}
	}
	var b base
	var ok [3]bool
	b.from, ok[0] = v[0].(string)
	b.to, ok[1] = v[1].(string)
	b.start, ok[2] = v[2].(string)
	b.ok = ok[0] && ok[1] && ok[2] && b.start != ""
	return b
}

// indexPart is a reply of fetchIndexScript.
type indexPart struct {
	mode, next string
	more       bool
	ids, base  []string
}

// indexResult unpacks a reply of fetchIndexScript.
func indexResult(c *redis.Cmd) (indexPart, error) {
	r, err := c.Slice()
	if err != nil {
		return indexPart{}, err
	}
	var p indexPart
	if len(r) != 5 {
		return p, fmt.Errorf("redisstore: the fanout index script returned %d values, want 5", len(r))
	}
	p.mode, _ = r[0].(string)
	p.next, _ = r[1].(string)
	more, _ := r[2].(string)
	p.more = more == "1"
	p.ids = stringList(r[3])
	p.base = stringList(r[4])
	return p, nil
}

// stringList returns the strings of a script's array reply.
func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// more reports whether a topic's index may hold IDs not read yet.
func (r *fanoutRead) more() bool {
	if r == nil {
		return false
	}
	for _, t := range r.topics {
		if t.left {
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
