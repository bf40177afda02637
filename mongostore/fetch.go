package mongostore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/topic"
)

// FetchOffline returns the stored messages for a client whose topic
// matches filter and, for a queue fetch, claims them (see persist.Store
// and the package doc).
func (s *Store) FetchOffline(ctx context.Context, clientID, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	const op = "FetchOffline"
	q, err := s.kit.Fetch(ctx, clientID, filter, opt)
	if err != nil {
		return nil, err
	}
	var out []*persist.Message
	if q.Fetch.Mode == persist.Queue {
		out, err = s.fetchQueue(ctx, q)
	} else {
		out, err = s.fetchFanout(ctx, q)
	}
	if err != nil {
		return nil, s.fail(ctx, op, s.what(fmt.Sprintf("client %q filter %q", clientID, filter), err))
	}
	return out, nil
}

// cursor is a client's fanout watermark on one topic: every fanout
// message of the topic at or before pos is acked by the client, was not
// due to it, or expired.
type cursor struct {
	pos     position
	mongoID string
	exists  bool
}

// parallel runs fns at once and returns the first error.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fetchFanout reads, at once, the client's subscriptions (for the fanout
// start), cursors and individual acks, then the fanout messages of the
// matching topics after the lowest of their cursors; it returns those
// after their topic's cursor and the subscription's start that the client
// has not acked. It then moves each cursor over the settled messages it
// may pass (see the package doc, # Skip nothing).
func (s *Store) fetchFanout(ctx context.Context, q *storekit.Query) ([]*persist.Message, error) {
	var (
		subs    []subscription
		cursors map[string]cursor
		acks    map[string]ack
	)
	err := parallel(
		func() (err error) { subs, err = s.storedSubs(ctx, s.sub, q.ClientID); return },
		func() (err error) { cursors, err = s.cursors(ctx, q); return },
		func() (err error) { acks, err = s.acks(ctx, q); return },
	)
	if err != nil {
		return nil, err
	}
	start := ""
	for _, x := range subs {
		if x.s.Filter == q.Filter {
			start = x.start
		}
	}
	msgs, err := s.readFanout(ctx, q, cursors)
	if err != nil {
		return nil, err
	}
	var out []*persist.Message
	for _, st := range msgs {
		m := st.m
		if c, ok := cursors[m.Topic]; ok && !positionOf(st).after(c.pos) {
			continue
		}
		if _, acked := acks[m.ID]; acked || m.ID <= start || !q.Keep(m) {
			continue
		}
		out = append(out, m)
	}
	out = q.Finish(out)
	s.settle(ctx, q, subs, cursors, acks, msgs)
	return out, nil
}

// cursors reads the client's fanout cursors on the topics q may read.
func (s *Store) cursors(ctx context.Context, q *storekit.Query) (map[string]cursor, error) {
	f := bson.D{{Key: aClientID, Value: q.ClientID}}
	f = append(f, topicQuery(aTopic, q.Match)...)
	cur, err := s.acked.Find(ctx, f)
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, err
	}
	out := make(map[string]cursor, len(raws))
	for _, r := range raws {
		if textOf(r.Lookup(aClientID)) != q.ClientID {
			continue
		}
		var c cursor
		c.exists = true
		if dt, ok := r.Lookup(aWT).DateTimeOK(); ok {
			c.pos.t = time.UnixMilli(dt)
		}
		c.pos.id = textOf(r.Lookup(aWID))
		c.mongoID = textOf(r.Lookup(aMongoID))
		out[textOf(r.Lookup(aTopic))] = c
	}
	return out, nil
}

// ack is an individual fanout ack as read.
type ack struct {
	topic string
	at    time.Time
}

// acks reads the client's individual fanout acks on the topics q may read.
func (s *Store) acks(ctx context.Context, q *storekit.Query) (map[string]ack, error) {
	f := bson.D{{Key: aClientID, Value: q.ClientID}}
	f = append(f, topicQuery(aTopic, q.Match)...)
	cur, err := s.ackedMsg.Find(ctx, f, options.Find().SetProjection(bson.D{{Key: aMsgID, Value: 1}, {Key: aTopic, Value: 1}, {Key: aAt, Value: 1}, {Key: aClientID, Value: 1}}))
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, err
	}
	out := make(map[string]ack, len(raws))
	for _, r := range raws {
		if textOf(r.Lookup(aClientID)) != q.ClientID {
			continue
		}
		a := ack{topic: textOf(r.Lookup(aTopic))}
		if dt, ok := r.Lookup(aAt).DateTimeOK(); ok {
			a.at = time.UnixMilli(dt)
		}
		out[textOf(r.Lookup(aMsgID))] = a
	}
	return out, nil
}

// readFanout reads the fanout messages of the topics matching q stored at
// or after the lowest cursor of those topics (all of them when a matching
// topic may have none: a topic without a cursor is read from its start).
func (s *Store) readFanout(ctx context.Context, q *storekit.Query, cursors map[string]cursor) ([]stored, error) {
	f := topicQuery(fTopic, q.Match)
	f = append(f, bson.E{Key: fMode, Value: persist.Fanout.String()})
	if !topic.HasWildcard(q.Match) {
		if c, ok := cursors[q.Match]; ok {
			f = append(f, bson.E{Key: fStored, Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(c.pos.t)}}})
		}
	}
	return s.readMessages(ctx, f)
}

// readMessages reads the message documents matching f.
func (s *Store) readMessages(ctx context.Context, f bson.D, opts ...options.Lister[options.FindOptions]) ([]stored, error) {
	if f == nil {
		f = bson.D{}
	}
	cur, err := s.msg.Find(ctx, f, opts...)
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []stored
	for cur.Next(ctx) {
		st, err := decodeMessage(cur.Current)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, cur.Err()
}

// settle moves the client's cursor of each topic read over the messages
// it may pass: in position order from the cursor, the messages stored
// before now minus Options.Settle that the client acked, that were not
// due to it (an ID at or before the earliest start of its stored
// subscriptions matching the topic) or that expired, up to the first
// other one. It then deletes the individual acks the cursor covers, and
// those of messages that are not stored (any more) once older than
// Options.AckGrace. Failures are left for the next fetch: a cursor is
// an optimisation of the acks, never their only record.
func (s *Store) settle(ctx context.Context, q *storekit.Query, subs []subscription, cursors map[string]cursor, acks map[string]ack, msgs []stored) {
	t := now()
	horizon := t.Add(-s.opt.Settle)
	byTopic := map[string][]stored{}
	for _, st := range msgs {
		if topic.Match(q.Match, st.m.Topic) {
			byTopic[st.m.Topic] = append(byTopic[st.m.Topic], st)
		}
	}
	read := map[string]bool{} // IDs of the messages read above their cursor
	var drop []string         // individual acks to delete
	for tp, list := range byTopic {
		slices.SortFunc(list, func(a, b stored) int {
			if positionOf(a).after(positionOf(b)) {
				return 1
			}
			if positionOf(b).after(positionOf(a)) {
				return -1
			}
			return 0
		})
		c := cursors[tp]
		earliest, any := "", false
		for _, x := range subs {
			if !topic.Match(inner(x.s.Filter), tp) {
				continue
			}
			if !any || x.start < earliest {
				earliest = x.start
			}
			any = true
		}
		next, hi := c.pos, c.mongoID
		var covered []string
		moved := false
		for _, st := range list {
			if positionOf(st).after(c.pos) {
				read[st.m.ID] = true
			}
		}
		for _, st := range list {
			p := positionOf(st)
			if !p.after(c.pos) {
				continue
			}
			if st.stored.After(horizon) {
				break
			}
			_, acked := acks[st.m.ID]
			due := !any || st.m.ID > earliest
			if !acked && due && !st.m.Expired(t) {
				break
			}
			next, moved = p, true
			if acked {
				covered = append(covered, st.m.ID)
				hi = max(hi, st.m.ID)
			}
		}
		if moved && s.moveCursor(ctx, q.ClientID, tp, c, next, hi) {
			drop = append(drop, covered...)
			for _, id := range covered {
				read[id] = false
			}
		}
	}
	// Acks of messages not read above their cursor: covered by it
	// already, or of messages not stored; kept for AckGrace.
	for id, a := range acks {
		if !read[id] && topic.Match(q.Match, a.topic) && a.at.Before(t.Add(-s.opt.AckGrace)) {
			drop = append(drop, id)
		}
	}
	if len(drop) > 0 {
		_, _ = s.ackedMsg.DeleteMany(ctx, bson.D{{Key: aClientID, Value: q.ClientID}, {Key: aMsgID, Value: bson.D{{Key: "$in", Value: strs(drop)}}}})
	}
}

// moveCursor moves the client's cursor of topic tp from c to next, if it
// is still at c (a compare and set: of two fetches moving it at once one
// wins), and reports whether it did.
func (s *Store) moveCursor(ctx context.Context, clientID, tp string, c cursor, next position, mongoID string) bool {
	set := bson.D{
		{Key: aWT, Value: bson.NewDateTimeFromTime(next.t)},
		{Key: aWID, Value: next.id},
		{Key: aMongoID, Value: mongoID},
	}
	if !c.exists {
		doc := append(bson.D{{Key: aClientID, Value: clientID}, {Key: aTopic, Value: tp}}, set...)
		_, err := s.acked.InsertOne(ctx, doc)
		return err == nil
	}
	res, err := s.acked.UpdateOne(ctx, bson.D{
		{Key: aClientID, Value: clientID},
		{Key: aTopic, Value: tp},
		{Key: aWT, Value: bson.NewDateTimeFromTime(c.pos.t)},
		{Key: aWID, Value: c.pos.id},
	}, bson.D{{Key: "$set", Value: set}})
	return err == nil && res.ModifiedCount == 1
}

// inner returns a filter without its $share/<group>/ prefix.
func inner(filter string) string {
	if _, in, ok := topic.Shared(filter); ok {
		return in
	}
	return filter
}

// fetchQueue returns and claims the queue messages of q (see the package
// doc, # Queue): it reads the candidates (without payloads) and their
// claims, takes those unclaimed, with a lease that ran out or claimed by
// the client already, in ID order, by inserting the next generation of
// their claims, and reads the messages it won.
func (s *Store) fetchQueue(ctx context.Context, q *storekit.Query) ([]*persist.Message, error) {
	f := topicQuery(fTopic, q.Match)
	f = append(f, bson.E{Key: fMode, Value: persist.Queue.String()})
	var cands []stored
	var claims map[string]*claim
	err := parallel(
		func() (err error) {
			cands, err = s.readMessages(ctx, f, options.Find().SetProjection(bson.D{{Key: fPayload, Value: 0}, {Key: fPayloadRaw, Value: 0}, {Key: fProps, Value: 0}}))
			return
		},
		func() (err error) { claims, err = s.claims(ctx, topicQuery(qTopic, q.Match)); return },
	)
	if err != nil {
		return nil, err
	}
	var free []*persist.Message
	for _, st := range cands {
		m := st.m
		if !q.Keep(m) {
			continue
		}
		c := claims[m.ID]
		if c != nil && (c.final || c.client != q.ClientID && q.Now.Before(c.until)) {
			continue // consumed, or claimed by another whose lease runs
		}
		free = append(free, m)
	}
	slices.SortFunc(free, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	until := q.Now.Add(q.Fetch.Lease)
	var won []string
	var old []string
	for len(free) > 0 && !q.Full(len(won)) {
		n := len(free)
		if q.Fetch.Limit > 0 {
			n = min(n, q.Fetch.Limit-len(won))
		}
		take := free[:n]
		free = free[n:]
		docs := make([]bson.D, len(take))
		for i, m := range take {
			gen := int64(0)
			if c := claims[m.ID]; c != nil {
				gen = c.gen + 1
			}
			docs[i] = claimDoc(m.ID, m.Topic, q.ClientID, gen, until, q.Now, false)
		}
		got, err := s.insertGenerations(ctx, docs)
		if err != nil {
			return nil, err
		}
		for _, m := range take {
			if got[m.ID] {
				won = append(won, m.ID)
				if c := claims[m.ID]; c != nil {
					old = append(old, c.ids...)
				}
			}
		}
	}
	if len(won) == 0 {
		return nil, nil
	}
	s.dropGenerations(ctx, old)
	msgs, err := s.readMessages(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: strs(won)}}}})
	if err != nil {
		return nil, err
	}
	out := make([]*persist.Message, 0, len(msgs))
	for _, st := range msgs {
		out = append(out, st.m)
	}
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
