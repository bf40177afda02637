package redisstore

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

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
