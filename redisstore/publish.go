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

// slack is how long (ms) a topic's fanout index keys may outlive their
// latest entry: a sixteenth of ExpiredAfter, so that a busy topic's keys
// get a new expiry a few times per ExpiredAfter instead of on every
// Publish; 0 without ExpiredAfter (messages then expire by their own
// Expiry, if any).
func (s *Store) slack() int64 { return (s.ttl / 16).Milliseconds() }

// indexGroup is what a batch adds to one topic's index of one mode.
type indexGroup struct {
	queue bool
	topic string
	msgs  []*persist.Message
	max   float64 // the latest expiry score
}

// groupBatch returns msgs by topic and mode, in the order of their first
// message.
func (s *Store) groupBatch(msgs []*persist.Message, now time.Time) []*indexGroup {
	type key struct {
		queue bool
		topic string
	}
	byKey := map[key]*indexGroup{}
	var order []*indexGroup
	for _, m := range msgs {
		k := key{m.Mode == persist.Queue, m.Topic}
		g := byKey[k]
		if g == nil {
			g = &indexGroup{queue: k.queue, topic: m.Topic}
			byKey[k] = g
			order = append(order, g)
		}
		g.msgs = append(g.msgs, m)
		if sc := score(s.ttlAt(m, now)); sc > g.max {
			g.max = sc
		}
	}
	return order
}

// publishPart is how many messages one script call of Publish writes:
// unpack() in Lua takes a few thousand values at most.
const publishPart = 1000

// Publish stores a batch (its unexpired messages, each ID once): per
// message a hash mqtt:msg:${msgid} with its expiry; per topic and mode the
// IDs in the topic's index — for fanout with the next positions of the
// topic's counter —; the topics in the registry for wildcard fetches; and
// one notice per topic on the topic's channel for watches (see Watch),
// last, so that the messages are readable when it is heard. On one Redis
// (a server or a Sentinel's master) that is one script call per part of
// up to publishPart messages, the batch packed in one argument (see
// publishScript). On a Cluster the keys span slots: a pipeline of commands
// and scripts per slot, run on several nodes at once, and the notices
// follow it, sent in the background after Publish returns (see
// notifyLater).
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	const op = "Publish"
	msgs, err := s.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	now := time.Now()
	// The notices: per topic the node that published its messages ("" when
	// they came from several).
	nodes := map[string]string{}
	var notices []string
	for _, m := range msgs {
		if n, ok := nodes[m.Topic]; !ok {
			nodes[m.Topic] = m.Node
			notices = append(notices, m.Topic)
		} else if n != m.Node {
			nodes[m.Topic] = ""
		}
	}
	if _, cluster := s.c.(*redis.ClusterClient); cluster {
		_, err = s.run(ctx, false, func(p redis.Pipeliner) { s.publishCluster(ctx, p, msgs, now) })
		if err == nil {
			s.notifyLater(notices, nodes)
		}
		return s.kit.Fail(ctx, op, err)
	}
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for i := 0; i < len(msgs); i += publishPart {
			var last []string
			if i+publishPart >= len(msgs) {
				last = notices
			}
			s.publishOne(ctx, p, msgs[i:min(i+publishPart, len(msgs))], now, last, nodes)
		}
	})
	return s.kit.Fail(ctx, op, err)
}

// publishOne queues the publishScript call that stores msgs on one Redis
// and then PUBLISHes the notices of topics (nodes: the node of each).
func (s *Store) publishOne(ctx context.Context, p redis.Pipeliner, msgs []*persist.Message, now time.Time, topics []string, nodes map[string]string) {
	groups := s.groupBatch(msgs, now)
	keys := make([]string, 0, len(msgs)+4*len(groups)+4)
	pk := packer{b: make([]byte, 0, 256*len(msgs))}
	pk.array(5)
	// The messages.
	pk.array(len(msgs))
	for _, m := range msgs {
		keys = append(keys, s.k.msgKey(m.ID))
		at := pk.openArray()
		var expiry int64
		if t := s.ttlAt(m, now); !t.IsZero() {
			expiry = ms(t)
		}
		pk.int(expiry)
		f := packFields{packer: &pk}
		writeMessage(&f, m, now)
		pk.closeArray(at, 1+f.n)
	}
	// The groups.
	pk.array(len(groups))
	var reg [2][]*indexGroup // fanout, queue
	for _, g := range groups {
		pk.array(3)
		q := 0
		if g.queue {
			q = 1
			keys = append(keys, s.k.queueKey(g.topic))
			pk.str("q")
		} else {
			fk := s.k.fanoutKeys(g.topic)
			keys = append(keys, fk.idx, fk.seq, fk.exp, fk.ids)
			pk.str("f")
		}
		pk.array(2 * len(g.msgs))
		for _, m := range g.msgs {
			sc := score(s.ttlAt(m, now))
			if g.queue {
				pk.score(sc)
				pk.str(m.ID)
			} else {
				pk.str(m.ID)
				pk.score(sc)
			}
		}
		pk.score(g.max) // read by fanout groups only
		reg[q] = append(reg[q], g)
	}
	// The registrations.
	pk.array(2)
	for q, gs := range reg {
		r := s.k.topicsKey(q == 1)
		keys = append(keys, r.exp, r.lex)
		pk.array(2 * len(gs))
		for _, g := range gs {
			pk.score(g.max)
			pk.str(g.topic)
		}
	}
	// The notices.
	pk.array(2 * len(topics))
	for _, t := range topics {
		pk.str(s.k.notifyChannel(t))
		pk.str(nodes[t])
	}
	pk.int(s.slack())
	publishScript.EvalSha(ctx, p, keys, pk.b)
}

// publishCluster queues a Publish of msgs on a Cluster: per message an
// HSET and its expiry, per topic and mode the index script, per mode the
// register script (their keys span slots: the pipeline sends each command
// to its slot's node).
func (s *Store) publishCluster(ctx context.Context, p redis.Pipeliner, msgs []*persist.Message, now time.Time) {
	for _, m := range msgs {
		key := s.k.msgKey(m.ID)
		p.HSet(ctx, key, messageFields(m, now)...)
		// A new hash has no TTL: only one to keep sets it (a message
		// stored again, by a retry, is the same message).
		if at := s.ttlAt(m, now); !at.IsZero() {
			p.PExpireAt(ctx, key, at)
		}
	}
	reg := map[bool][]any{}
	for _, g := range s.groupBatch(msgs, now) {
		args := make([]any, 0, 2*len(g.msgs))
		for _, m := range g.msgs {
			if sc := score(s.ttlAt(m, now)); g.queue {
				args = append(args, sc, m.ID)
			} else {
				args = append(args, m.ID, sc)
			}
		}
		// unpack() in Lua takes a few thousand values at most.
		for i := 0; i < len(args); i += 2000 {
			part := args[i:min(i+2000, len(args))]
			if g.queue {
				queueIndexScript.EvalSha(ctx, p, []string{s.k.queueKey(g.topic)}, part...)
			} else {
				fk := s.k.fanoutKeys(g.topic)
				fanoutIndexScript.EvalSha(ctx, p, []string{fk.idx, fk.seq, fk.exp, fk.ids}, append([]any{s.slack(), g.max}, part...)...)
			}
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
}

// notifyLater has the notices of a Publish sent after it returns (on a
// Cluster, where they cannot ride in its pipeline): a goroutine, started
// when there is none, sends what Publishes left, merged, one pipeline at a
// time, and ends when none is left.
func (s *Store) notifyLater(topics []string, nodes map[string]string) {
	s.noticeMu.Lock()
	defer s.noticeMu.Unlock()
	if s.notices == nil {
		s.notices = map[string]string{}
	}
	for _, t := range topics {
		if n, ok := s.notices[t]; ok && n != nodes[t] {
			s.notices[t] = "" // published by several nodes
		} else {
			s.notices[t] = nodes[t]
		}
	}
	if !s.notifying {
		s.notifying = true
		go s.sendNotices()
	}
}

// sendNotices PUBLISHes the notices left by Publishes until none is left.
// A notice that cannot be sent is dropped: the watches of nodes that miss
// it fetch at the next notice or reconnect.
func (s *Store) sendNotices() {
	for {
		s.noticeMu.Lock()
		batch := s.notices
		s.notices = nil
		if len(batch) == 0 {
			s.notifying = false
			s.noticeMu.Unlock()
			return
		}
		s.noticeMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = s.run(ctx, false, func(p redis.Pipeliner) {
			for t, node := range batch {
				p.Publish(ctx, s.k.notifyChannel(t), node)
			}
		})
		cancel()
	}
}
