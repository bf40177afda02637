package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
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
	ids   []string              // the acked IDs, as given
	of    []int                 // the index in the batch of each of ids
	seqs  *redis.FloatSliceCmd  // their positions in the topic's index (0: not stored)
	w     *redis.StringCmd      // the client's watermark
	n     *redis.IntCmd         // the client's acks recorded above it
	base  *redis.SliceCmd       // the end and start of the client's base
	early *redis.StringSliceCmd // the client's acks of messages not stored when acked
	fan   []int                 // indexes (into ids) of the fanout acks
	scan  *redis.Cmd            // the settle scan
}

// Acked handles a batch of acks. Per ack, a queue message claimed by the
// client is deleted (and the ID leaves its topic's queue index); every ack
// that is not of a queue message is a fanout ack: it is recorded in the
// client's set of acks of the topic, and the watermark moves over what is
// settled — from the watermark up, the first message the client has not
// acked (not expired, after the earliest start of the client's
// subscriptions that match the topic) stops it. The seeds'
// mqtt:acked:${clientid}:${topic} keeps the highest ID acked.
//
// On one Redis (also behind Sentinel) that is two round trips: the
// client's subscriptions and their starts are read, then one script
// (ackedScript) does the rest. On a Cluster, whose keys of one script
// must share a slot, it is three (ackedCluster).
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	const op = "Acked"
	if err := s.kit.Acked(ctx, clientID, acks); err != nil || len(acks) == 0 {
		return err
	}
	if _, cluster := s.c.(*redis.ClusterClient); cluster {
		return s.kit.Fail(ctx, op, s.ackedCluster(ctx, clientID, acks))
	}
	var starts func() func(string) string
	if _, err := s.run(ctx, false, func(p redis.Pipeliner) { starts = s.subStarts(ctx, p, clientID) }); err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	start := starts()
	// Per topic its acked IDs, each once, greatest first: the script takes
	// the first fanout one as the topic's cursor.
	byTopic := map[string][]string{}
	var topics []string
	for _, a := range acks {
		ids, ok := byTopic[a.Topic]
		if !ok {
			topics = append(topics, a.Topic)
		}
		byTopic[a.Topic] = append(ids, a.ID)
	}
	keys := make([]string, 0, 11*len(topics)+len(acks))
	for _, t := range topics {
		fk, ck := s.k.fanoutKeys(t), s.k.cursorKeys(clientID, t)
		keys = append(keys, s.k.queueKey(t), fk.idx, fk.exp, fk.seq, fk.ids, ck.w, ck.acks, ck.passed, ck.base, ck.kept, s.k.ackedKey(clientID, t))
	}
	pk := packer{b: make([]byte, 0, 64+40*len(acks))}
	pk.array(4)
	pk.str(clientID)
	pk.int(s.ttl.Milliseconds())
	pk.int(ms(time.Now()))
	pk.array(len(topics))
	for _, t := range topics {
		ids := byTopic[t]
		slices.SortFunc(ids, func(a, b string) int { return strings.Compare(b, a) })
		ids = slices.Compact(ids)
		pk.array(1 + len(ids))
		pk.str(start(t))
		for _, id := range ids {
			pk.str(id)
			keys = append(keys, s.k.msgKey(id))
		}
	}
	_, err := s.run(ctx, false, func(p redis.Pipeliner) { ackedScript.EvalSha(ctx, p, keys, pk.b) })
	return s.kit.Fail(ctx, op, err)
}

// ackedCluster is Acked on a Cluster, in three round trips. First, per ack
// a script on the message's hash deletes a queue message claimed by the
// client (ackScript), and per topic the acked messages' positions, the
// client's watermark, its acks above it (the number, and those of
// messages not stored when acked) and its base are read, with the
// client's subscriptions. A settle scan of each topic's index with fanout
// acks (second round trip) finds the candidates — jumping to the IDs
// after the start when the base read can take what the watermark passes
// (see settle); a script on the client's cursor keys (third) records the
// acks and moves the watermark if it is still the one read.
func (s *Store) ackedCluster(ctx context.Context, clientID string, acks []persist.Ack) error {
	kinds := make([]*redis.Cmd, len(acks))
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
	var starts func() func(string) string
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, a := range acks {
			kinds[i] = ackScript.EvalSha(ctx, p, []string{s.k.msgKey(a.ID)}, clientID)
		}
		for _, at := range topics {
			at.seqs = p.ZMScore(ctx, s.k.fanoutKeys(at.topic).idx, at.ids...)
			ck := s.k.cursorKeys(clientID, at.topic)
			at.w = p.Get(ctx, ck.w)
			at.n = p.ZCard(ctx, ck.acks)
			at.base = p.HMGet(ctx, ck.base, "to", "start")
			at.early = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: ck.acks, Start: "-inf", Stop: "(0", ByScore: true})
		}
		starts = s.subStarts(ctx, p, clientID)
	})
	if err != nil {
		return err
	}
	// 2: a queue message the client claimed, deleted; 1: a queue message
	// left alone; 0: not a queue message, a fanout ack.
	done := make([]int64, len(acks))
	var deleted []persist.Ack
	for i, a := range acks {
		done[i], _ = kinds[i].Int64()
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
	start := starts()
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
			st, w := start(at.topic), watermark(at.w)
			args := []any{w, st, limit, limit + 2000, ""}
			if st != "" && baseJoins(at.base, w, st) {
				args[4] = "1"
				for _, id := range at.early.Val() {
					args = append(args, id)
				}
			}
			at.scan = settleScript.EvalSha(ctx, p, []string{fk.idx, fk.exp, fk.seq, fk.ids}, args...)
		}
	})
	if err != nil || len(fanTopics) == 0 {
		return err
	}
	now := strconv.FormatInt(ms(time.Now()), 10)
	pending := "-" + now // the score of an ack of a message not stored yet
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for _, at := range fanTopics {
			seqs := at.seqs.Val()
			upto, cands, mode := scanResult(at.scan)
			args := make([]any, 0, 7+2*len(at.fan)+len(cands))
			args = append(args, now, ttl, watermark(at.w), upto, start(at.topic), mode, 0)
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
			args[6] = len(seen)
			args = append(args, cands...)
			ck := s.k.cursorKeys(clientID, at.topic)
			advanceScript.EvalSha(ctx, p, []string{ck.w, ck.acks, ck.passed, ck.base, ck.kept}, args...)
		}
	})
	return err
}

// watermark is the value of a watermark read ("0" when there is none).
func watermark(c *redis.StringCmd) string {
	if v := c.Val(); v != "" {
		return v
	}
	return "0"
}

// baseJoins reports whether a client's base read (its end and start) can
// take what its watermark w passes under start st: there is none, or it
// ends at w with start st (see advance).
func baseJoins(c *redis.SliceCmd, w, st string) bool {
	v := c.Val()
	if len(v) != 2 || v[0] == nil {
		return true
	}
	to, _ := v[0].(string)
	bs, _ := v[1].(string)
	a, err1 := strconv.ParseInt(to, 10, 64)
	b, err2 := strconv.ParseInt(w, 10, 64)
	return err1 == nil && err2 == nil && a == b && bs == st
}

// scanResult unpacks settleScript's reply: upto ("" when the scan
// failed), the candidates as script arguments (id, seq, due, …) and the
// scan's mode.
func scanResult(c *redis.Cmd) (string, []any, string) {
	r, err := c.Slice()
	if err != nil || len(r) != 3 {
		return "", nil, ""
	}
	upto, ok := r[0].(string)
	if !ok {
		return "", nil, ""
	}
	list, _ := r[1].([]any)
	mode, _ := r[2].(string)
	return upto, list, mode
}

// subStarts queues the reads of a client's subscribed filters and their
// fanout starts; once p has run, the function it returns gives startsOf
// them.
func (s *Store) subStarts(ctx context.Context, p redis.Pipeliner, clientID string) func() func(string) string {
	subs := p.HKeys(ctx, s.k.subKey(clientID))
	starts := p.HGetAll(ctx, s.k.subStartKey(clientID))
	return func() func(string) string { return startsOf(subs.Val(), starts.Val()) }
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
