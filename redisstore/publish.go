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

// Publish stores a batch (its unexpired messages, each ID once) in one
// pipeline: per message an HSET of mqtt:msg:${msgid} and its expiry; per
// topic and mode one script that adds the IDs to the topic's index — for
// fanout with the next positions of the topic's counter —; per mode one
// script that registers the topics for wildcard fetches; and one notice
// per topic on the topic's channel for watches (see Watch), last, so that
// the messages are readable when it is heard. On a Cluster the pipeline's
// commands run on several nodes at once, so the notices follow it, sent
// in the background after Publish returns (see notifyLater).
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	const op = "Publish"
	msgs, err := s.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	now := time.Now()
	type group struct {
		queue bool
		topic string
		args  []any // queue: score, id, …; fanout: id, score, …
		max   float64
	}
	groups := map[string]*group{}
	var order []*group
	// The notices: per topic the node that published its messages ("" when
	// they came from several).
	nodes := map[string]string{}
	var notices []string
	for _, m := range msgs {
		q := m.Mode == persist.Queue
		gk := m.Mode.String() + "\x00" + m.Topic
		g := groups[gk]
		if g == nil {
			g = &group{queue: q, topic: m.Topic}
			groups[gk] = g
			order = append(order, g)
		}
		sc := score(s.ttlAt(m, now))
		if q {
			g.args = append(g.args, sc, m.ID)
		} else {
			g.args = append(g.args, m.ID, sc)
		}
		if sc > g.max {
			g.max = sc
		}
		if n, ok := nodes[m.Topic]; !ok {
			nodes[m.Topic] = m.Node
			notices = append(notices, m.Topic)
		} else if n != m.Node {
			nodes[m.Topic] = ""
		}
	}
	_, cluster := s.c.(*redis.ClusterClient)
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		if cluster {
			// The message hashes span slots: a command each.
			for _, m := range msgs {
				key := s.k.msgKey(m.ID)
				p.HSet(ctx, key, messageFields(m, now)...)
				// A new hash has no TTL: only one to keep sets it (a
				// message stored again, by a retry, is the same message).
				if at := s.ttlAt(m, now); !at.IsZero() {
					p.PExpireAt(ctx, key, at)
				}
			}
		} else {
			s.storeHashes(ctx, p, msgs, now)
		}
		reg := map[bool][]any{}
		for _, g := range order {
			// unpack() in Lua takes a few thousand values at most.
			for i := 0; i < len(g.args); i += 2000 {
				part := g.args[i:min(i+2000, len(g.args))]
				if g.queue {
					queueIndexScript.EvalSha(ctx, p, []string{s.k.queueKey(g.topic)}, part...)
				} else {
					fk := s.k.fanoutKeys(g.topic)
					fanoutIndexScript.EvalSha(ctx, p, []string{fk.idx, fk.seq, fk.exp}, part...)
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
		if !cluster {
			for _, t := range notices {
				p.Publish(ctx, s.k.notifyChannel(t), nodes[t])
			}
		}
	})
	if err == nil && cluster {
		s.notifyLater(notices, nodes)
	}
	return s.kit.Fail(ctx, op, err)
}

// storeHashes writes the message hashes (and their TTLs) with one script
// call per part of the batch, on one Redis: fewer commands to build, send
// and answer than an HSET and a PEXPIREAT each.
func (s *Store) storeHashes(ctx context.Context, p redis.Pipeliner, msgs []*persist.Message, now time.Time) {
	const part = 200 // unpack() in Lua takes a few thousand values at most
	for i := 0; i < len(msgs); i += part {
		batch := msgs[i:min(i+part, len(msgs))]
		keys := make([]string, len(batch))
		args := make([]any, 0, 32*len(batch))
		for j, m := range batch {
			keys[j] = s.k.msgKey(m.ID)
			var ttl int64
			if at := s.ttlAt(m, now); !at.IsZero() {
				ttl = ms(at)
			}
			f := messageFields(m, now)
			args = append(args, len(f), ttl)
			args = append(args, f...)
		}
		storeHashesScript.EvalSha(ctx, p, keys, args...)
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
