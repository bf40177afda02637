package redisstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// Connected records a client's connection state in mqtt:client:${clientid}
// (state, online_at, offline_at, node as the seeds, plus username, peerhost
// and millisecond times) and lists the client in mqtt:node:${node} while it
// is online there. One script on the client hash decides and writes, so a
// disconnect from a node the client has left (arriving after its connect
// on another node) changes nothing there; that node's list loses the
// client all the same.
func (s *Store) Connected(ctx context.Context, c *persist.Client) error {
	const op = "Connected"
	if err := s.kit.Connected(ctx, c); err != nil {
		return err
	}
	args := []any{"0", c.Node, "0", cState, "0", cNode, c.Node, cUsername, c.Username, cPeerHost, c.PeerHost}
	if c.Online {
		args[0], args[4] = "1", "1"
	}
	if c.OfflineAt.IsZero() {
		args[2] = "1" // as the seeds show a client never offline
	}
	if !c.OnlineAt.IsZero() {
		args = append(args, cOnlineAt, strconv.FormatInt(c.OnlineAt.Unix(), 10), cOnlineAtMs, strconv.FormatInt(ms(c.OnlineAt), 10))
	}
	if !c.OfflineAt.IsZero() {
		args = append(args, cOfflineAt, strconv.FormatInt(c.OfflineAt.Unix(), 10), cOfflineAtMs, strconv.FormatInt(ms(c.OfflineAt), 10))
	}
	var res *redis.Cmd
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		res = connectedScript.EvalSha(ctx, p, []string{s.k.clientKey(c.ID)}, args...)
		// Whether or not the disconnect applies, the client is not online
		// on the node it disconnected from.
		if c.Node == "" {
			return
		}
		if c.Online {
			at := c.OnlineAt
			if at.IsZero() {
				at = time.Now()
			}
			p.HSet(ctx, s.k.nodeKey(c.Node), c.ID, strconv.FormatInt(at.Unix(), 10))
		} else {
			p.HDel(ctx, s.k.nodeKey(c.Node), c.ID)
		}
	})
	if err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	r, err := res.Slice()
	if err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	if len(r) != 2 {
		return s.kit.Fail(ctx, op, fmt.Errorf("connected script returned %v", r))
	}
	wrote, _ := r[0].(int64)
	prev, _ := r[1].(string)
	// A takeover (or a disconnect reported by another node of a client
	// stored with no node or offline): the client is no longer online on
	// the node it was on.
	if wrote == 1 && prev != "" && prev != c.Node {
		err = s.c.HDel(ctx, s.k.nodeKey(prev), c.ID).Err()
	}
	return s.kit.Fail(ctx, op, err)
}

// event is the JSON of a subscribe or unsubscribe event, the seeds'
// {"type": …, "topic": …, "clientid": …, "qos": …}.
type event struct {
	Type     string `json:"type"`
	Topic    string `json:"topic"`
	ClientID string `json:"clientid"`
	QoS      *int   `json:"qos,omitempty"`
}

func eventJSON(typ, filter, clientID string, qos *int) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(event{Type: typ, Topic: filter, ClientID: clientID, QoS: qos})
	return strings.TrimSuffix(b.String(), "\n")
}

// subOptions encodes a subscription's MQTT 5 options as
// "no_local retain_as_published retain_handling identifier", or "" when
// all are zero.
func subOptions(sub *persist.Subscription) string {
	if !sub.NoLocal && !sub.RetainAsPublished && sub.RetainHandling == 0 && sub.Identifier == 0 {
		return ""
	}
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	return b(sub.NoLocal) + " " + b(sub.RetainAsPublished) + " " + strconv.Itoa(int(sub.RetainHandling)) + " " + strconv.Itoa(sub.Identifier)
}

func parseSubOptions(v string, sub *persist.Subscription) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return
	}
	sub.NoLocal = f[0] == "1"
	sub.RetainAsPublished = f[1] == "1"
	if n, err := strconv.Atoi(f[2]); err == nil && n >= 0 && n <= 2 {
		sub.RetainHandling = byte(n)
	}
	sub.Identifier, _ = strconv.Atoi(f[3])
}

// Subscribed removes the filters in removed and then adds or updates subs
// (the last of each filter) in mqtt:sub:${clientid} (filter → QoS, as the seeds), with MQTT 5
// options in mqtt:subopt:${clientid} and fanout starts in
// mqtt:substart:${clientid}, and PUBLISHes an event per filter on the
// channel — in one MULTI/EXEC on a single server or Sentinel; on a Cluster
// in one pipeline, the events through one node so that they stay in order.
func (s *Store) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	const op = "Subscribed"
	subs, err := s.kit.Subscribed(ctx, clientID, subs, removed)
	if err != nil || len(subs) == 0 && len(removed) == 0 {
		return err
	}
	subKey, optKey, startKey := s.k.subKey(clientID), s.k.subOptKey(clientID), s.k.subStartKey(clientID)
	cc, cluster := s.c.(*redis.ClusterClient)
	_, err = s.run(ctx, true, func(p redis.Pipeliner) {
		for _, f := range removed {
			p.HDel(ctx, subKey, f)
			p.HDel(ctx, optKey, f)
			p.HDel(ctx, startKey, f)
		}
		for i := range subs {
			sub := &subs[i]
			p.HSet(ctx, subKey, sub.Filter, strconv.Itoa(int(sub.QoS)))
			if o := subOptions(sub); o != "" {
				p.HSet(ctx, optKey, sub.Filter, o)
			} else {
				p.HDel(ctx, optKey, sub.Filter)
			}
			p.HSetNX(ctx, startKey, sub.Filter, storekit.Start(sub))
		}
		if s.events && !cluster {
			s.publishEvents(ctx, p, clientID, subs, removed)
		}
	})
	if err == nil && s.events && cluster {
		// A Cluster pipeline sends each PUBLISH to any node, so the events
		// would arrive out of order: send them all to one node.
		var node *redis.Client
		if node, err = cc.MasterForKey(ctx, s.channel); err == nil {
			_, err = node.Pipelined(ctx, func(p redis.Pipeliner) error {
				s.publishEvents(ctx, p, clientID, subs, removed)
				return nil
			})
		}
	}
	return s.kit.Fail(ctx, op, err)
}

// publishEvents queues the events of a Subscribed call, in order.
func (s *Store) publishEvents(ctx context.Context, p redis.Pipeliner, clientID string, subs []persist.Subscription, removed []string) {
	for _, f := range removed {
		p.Publish(ctx, s.channel, eventJSON("unsubscribe", f, clientID, nil))
	}
	for i := range subs {
		q := int(subs[i].QoS)
		p.Publish(ctx, s.channel, eventJSON("subscribe", subs[i].Filter, clientID, &q))
	}
}

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
// pipeline: per message an HSET of
// mqtt:msg:${msgid} and its expiry; per topic and mode one script that adds
// the IDs to the topic's index; per mode one script that registers the
// topics for wildcard fetches.
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
		args  []any // score, id, …
		max   float64
	}
	groups := map[string]*group{}
	var order []*group
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
		g.args = append(g.args, sc, m.ID)
		if sc > g.max {
			g.max = sc
		}
	}
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for _, m := range msgs {
			key := s.k.msgKey(m.ID)
			p.HSet(ctx, key, messageFields(m, now)...)
			if at := s.ttlAt(m, now); !at.IsZero() {
				p.PExpireAt(ctx, key, at)
			} else {
				p.Persist(ctx, key)
			}
		}
		reg := map[bool][]any{}
		for _, g := range order {
			idx := s.k.indexKey(g.queue, g.topic)
			// unpack() in Lua takes a few thousand values at most.
			for i := 0; i < len(g.args); i += 2000 {
				indexScript.EvalSha(ctx, p, []string{idx}, g.args[i:min(i+2000, len(g.args))]...)
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
	})
	return s.kit.Fail(ctx, op, err)
}

// Acked handles a batch of acks in two round trips: a script per ack on
// the message's hash deletes a queue message claimed by the client (and
// the ID leaves its topic index); every other ack moves the client's
// cursor mqtt:acked:${clientid}:${topic} forward, never back.
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	const op = "Acked"
	if err := s.kit.Acked(ctx, clientID, acks); err != nil || len(acks) == 0 {
		return err
	}
	res := make([]*redis.Cmd, len(acks))
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i, a := range acks {
			res[i] = ackScript.EvalSha(ctx, p, []string{s.k.msgKey(a.ID)}, clientID)
		}
	})
	if err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	// 2: a queue message the client claimed, deleted; 0: not a queue
	// message, a fanout ack.
	done := make([]int, len(acks))
	var deleted []persist.Ack
	for i, a := range acks {
		if done[i], _ = res[i].Int(); done[i] == 2 {
			deleted = append(deleted, a)
		}
	}
	cursors := storekit.Cursors(acks, func(i int) bool { return done[i] == 0 })
	ttl := strconv.FormatInt(s.ttl.Milliseconds(), 10)
	_, err = s.run(ctx, false, func(p redis.Pipeliner) {
		for _, a := range deleted {
			p.ZRem(ctx, s.k.indexKey(true, a.Topic), a.ID)
		}
		for _, c := range cursors {
			cursorScript.EvalSha(ctx, p, []string{s.k.ackedKey(clientID, c.Topic)}, c.ID, ttl)
		}
	})
	return s.kit.Fail(ctx, op, err)
}

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
