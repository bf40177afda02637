package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/topic"
)

// ackTopic is what Acked reads and writes for one topic of a batch's
// fanout acks.
type ackTopic struct {
	topic string
	ids   []string             // the acked IDs, as given
	of    []int                // the index in the batch of each of ids
	seqs  *redis.FloatSliceCmd // their positions in the topic's index (0: not stored)
	w     *redis.StringCmd     // the client's watermark
	n     *redis.IntCmd        // the client's acks recorded above it
	fan   []int                // indexes (into ids) of the fanout acks
	scan  *redis.Cmd           // the settle scan
}

// Acked handles a batch of acks in three round trips. First, per ack a
// script on the message's hash deletes a queue message claimed by the
// client (and the ID leaves its topic's queue index), and per topic the
// acked messages' positions, the client's watermark and its acks above it
// are read, with the client's subscriptions. Every ack that is not of a
// queue message is a fanout ack: it is recorded in the client's set of
// acks of the topic, and the watermark moves over what is settled — from
// the watermark up, the first message the client has not acked (not
// expired, after the earliest start of the client's subscriptions that
// match the topic) stops it. A scan of the topic's index (second round
// trip) finds the candidates; a script on the client's cursor keys (third)
// records the acks and moves the watermark if it is still the one read.
// The seeds' mqtt:acked:${clientid}:${topic} keeps the highest ID acked.
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	const op = "Acked"
	if err := s.kit.Acked(ctx, clientID, acks); err != nil || len(acks) == 0 {
		return err
	}
	_, cluster := s.c.(*redis.ClusterClient)
	var kinds []*redis.Cmd
	var many *redis.Cmd // !cluster: every ack's kind in one script
	if cluster {
		kinds = make([]*redis.Cmd, len(acks))
	}
	byTopic := map[string]*ackTopic{}
	var topics []*ackTopic
	for i, a := range acks {
		at := byTopic[a.Topic]
		if at == nil {
			at = &ackTopic{topic: a.Topic}
			byTopic[a.Topic] = at
			topics = append(topics, at)
		}
		at.ids = append(at.ids, a.ID)
		at.of = append(at.of, i)
	}
	var subs *redis.StringSliceCmd
	var starts *redis.MapStringStringCmd
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		if cluster {
			for i, a := range acks {
				kinds[i] = ackScript.EvalSha(ctx, p, []string{s.k.msgKey(a.ID)}, clientID)
			}
		} else {
			keys := make([]string, len(acks))
			for i, a := range acks {
				keys[i] = s.k.msgKey(a.ID)
			}
			many = ackManyScript.EvalSha(ctx, p, keys, clientID)
		}
		for _, at := range topics {
			at.seqs = p.ZMScore(ctx, s.k.fanoutKeys(at.topic).idx, at.ids...)
			ck := s.k.cursorKeys(clientID, at.topic)
			at.w = p.Get(ctx, ck.w)
			at.n = p.ZCard(ctx, ck.acks)
		}
		subs = p.HKeys(ctx, s.k.subKey(clientID))
		starts = p.HGetAll(ctx, s.k.subStartKey(clientID))
	})
	if err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	// 2: a queue message the client claimed, deleted; 1: a queue message
	// left alone; 0: not a queue message, a fanout ack.
	done := make([]int64, len(acks))
	var deleted []persist.Ack
	var manyKinds []int64
	if many != nil {
		if manyKinds, err = many.Int64Slice(); err != nil || len(manyKinds) != len(acks) {
			return s.kit.Fail(ctx, op, fmt.Errorf("ack kinds: %d for %d acks: %v", len(manyKinds), len(acks), err))
		}
	}
	for i, a := range acks {
		if many != nil {
			done[i] = manyKinds[i]
		} else {
			done[i], _ = kinds[i].Int64()
		}
		if done[i] == 2 {
			deleted = append(deleted, a)
		}
	}
	var fanTopics []*ackTopic
	for _, at := range topics {
		for j, i := range at.of {
			if done[i] == 0 {
				at.fan = append(at.fan, j)
			}
		}
		if len(at.fan) > 0 {
			fanTopics = append(fanTopics, at)
		}
	}
	cursors := storekit.Cursors(acks, func(i int) bool { return done[i] == 0 })
	ttl := strconv.FormatInt(s.ttl.Milliseconds(), 10)
	start := startsOf(subs.Val(), starts.Val())
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for _, a := range deleted {
			p.ZRem(ctx, s.k.queueKey(a.Topic), a.ID)
		}
		for _, c := range cursors {
			cursorScript.EvalSha(ctx, p, []string{s.k.ackedKey(clientID, c.Topic)}, c.ID, ttl)
		}
		for _, at := range fanTopics {
			fk := s.k.fanoutKeys(at.topic)
			// The first due message the client has not acked is at most
			// the (acks recorded + acks now + 1)th due one above the
			// watermark.
			limit := min(int(at.n.Val())+len(at.fan)+1, 5000)
			at.scan = settleScript.EvalSha(ctx, p, []string{fk.idx, fk.exp, fk.seq}, watermark(at.w), start(at.topic), limit, limit+2000)
		}
	})
	if err != nil || len(fanTopics) == 0 {
		return s.kit.Fail(ctx, op, err)
	}
	now := strconv.FormatInt(ms(time.Now()), 10)
	pending := "-" + now // the score of an ack of a message not stored yet
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for _, at := range fanTopics {
			seqs := at.seqs.Val()
			upto, cands := scanResult(at.scan)
			args := make([]any, 0, 5+2*len(at.fan)+len(cands))
			args = append(args, now, ttl, watermark(at.w), upto, 0)
			seen := make(map[string]bool, len(at.fan))
			for _, j := range at.fan {
				id := at.ids[j]
				if seen[id] {
					continue
				}
				seen[id] = true
				score := pending
				if j < len(seqs) && seqs[j] > 0 { // positions are integers below 2⁵³: exact
					score = strconv.FormatFloat(seqs[j], 'f', -1, 64)
				}
				args = append(args, score, id)
			}
			args[4] = len(seen)
			args = append(args, cands...)
			ck := s.k.cursorKeys(clientID, at.topic)
			advanceScript.EvalSha(ctx, p, []string{ck.w, ck.acks, ck.passed}, args...)
		}
	})
	return s.kit.Fail(ctx, op, err)
}

// watermark is the value of a watermark read ("0" when there is none).
func watermark(c *redis.StringCmd) string {
	if v := c.Val(); v != "" {
		return v
	}
	return "0"
}

// scanResult unpacks settleScript's reply: upto ("" when the scan failed)
// and the candidates as script arguments (id, seq, due, …).
func scanResult(c *redis.Cmd) (string, []any) {
	r, err := c.Slice()
	if err != nil || len(r) != 2 {
		return "", nil
	}
	upto, ok := r[0].(string)
	if !ok {
		return "", nil
	}
	list, _ := r[1].([]any)
	return upto, list
}

// startsOf returns, for a client's subscribed filters and their fanout
// starts (mqtt:substart), the function that gives a topic's S: the
// earliest start among the subscriptions whose filter matches the topic,
// or "" when one of them has no start (History, or stored without one) or
// none matches. Messages with IDs at or below S were due to none of the
// client's subscriptions, so they do not hold its watermark back.
func startsOf(filters []string, starts map[string]string) func(topic string) string {
	return func(name string) string {
		s, found := "", false
		for _, f := range filters {
			inner := f
			if _, in, ok := topic.Shared(f); ok {
				inner = in
			}
			if !topic.Match(inner, name) {
				continue
			}
			st := starts[f]
			if st == "" {
				return ""
			}
			if !found || st < s {
				s, found = st, true
			}
		}
		return s
	}
}
