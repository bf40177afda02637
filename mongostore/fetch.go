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
// start), cursors, individual acks and the settled horizon; then, at
// once, the messages to return — the fanout messages of the matching
// topics after their topic's cursor and the subscription's start that
// the client has not acked, in ID order, Limit at a time from the server
// — and the settled window after the cursor, over which settle moves the
// cursors (see the package doc, # Skip nothing).
func (s *Store) fetchFanout(ctx context.Context, q *storekit.Query) ([]*persist.Message, error) {
	var (
		subs    []subscription
		cursors map[string]cursor
		acks    map[string]ack
		horizon time.Time
	)
	err := parallel(
		func() (err error) { subs, err = s.storedSubs(ctx, s.sub, q.ClientID); return },
		func() (err error) { cursors, err = s.cursors(ctx, q); return },
		func() (err error) { acks, err = s.acks(ctx, q); return },
		func() (err error) { horizon, err = s.horizon(ctx, q.Now); return },
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
	r := &fanoutRead{s: s, q: q, start: start, cursors: cursors, acks: acks, horizon: horizon}
	r.bound, r.bounded = cursors[q.Match] // the topic's cursor, or the filter's floor
	r.base = topicQuery(fTopic, q.Match)
	r.base = append(r.base, bson.E{Key: fMode, Value: persist.Fanout.String()})
	var out []*persist.Message
	var window []stored
	var truncated bool
	// The window can move a cursor only over acked messages or those not
	// due (an ID at or before a subscription's start).
	settles := false
	for _, a := range acks {
		settles = settles || topic.Match(q.Match, a.topic)
	}
	for _, x := range subs {
		settles = settles || x.start != ""
	}
	err = parallel(
		func() (err error) { out, err = r.unacked(ctx); return },
		func() (err error) {
			if settles {
				window, truncated, err = r.window(ctx)
			}
			return
		},
	)
	if err != nil {
		return nil, err
	}
	if settles {
		s.settle(ctx, q, horizon, subs, cursors, acks, window, truncated)
	}
	return out, nil
}

// fanoutRead is one fanout fetch's reads.
type fanoutRead struct {
	s       *Store
	q       *storekit.Query
	start   string // the subscription's start ("" none)
	cursors map[string]cursor
	acks    map[string]ack
	horizon time.Time
	bound   cursor // where the reads start, when bounded
	bounded bool
	base    bson.D // the matching topics' fanout messages
}

// from returns the filters of the messages stamped from the read's bound
// (see Store.since), and a filter of all when it has none.
func (r *fanoutRead) from(ctx context.Context, extra ...bson.E) ([]bson.D, error) {
	base := append(append(bson.D{}, r.base...), extra...)
	if !r.bounded {
		return []bson.D{base}, nil
	}
	return r.s.since(ctx, base, fStored, r.bound.pos.t, readBuckets)
}

// maxNin is the most acked IDs a read leaves out on the server ($nin);
// with more it leaves them out itself.
const maxNin = 1000

// unacked returns the messages the fetch returns: in pages of Limit from
// the server in ID order (the merged first pages of the bucket queries on
// FerretDB), after the start and the acked IDs left out on the server,
// then those that Keep and are after their topic's cursor, until Limit
// are found or none are left.
func (r *fanoutRead) unacked(ctx context.Context) ([]*persist.Message, error) {
	q := r.q
	var nin bson.A
	for id, a := range r.acks {
		if topic.Match(q.Match, a.topic) {
			nin = append(nin, id)
		}
	}
	if len(nin) > maxNin {
		nin = nil
	}
	page := int64(0)
	if q.Fetch.Limit > 0 {
		page = int64(q.Fetch.Limit + 8)
	}
	var out []*persist.Message
	after := r.start
	for {
		idCond := bson.D{}
		if after != "" {
			idCond = append(idCond, bson.E{Key: "$gt", Value: after})
		}
		if len(nin) > 0 {
			idCond = append(idCond, bson.E{Key: "$nin", Value: nin})
		}
		var extra []bson.E
		if len(idCond) > 0 {
			extra = append(extra, bson.E{Key: fID, Value: idCond})
		}
		filters, err := r.from(ctx, extra...)
		if err != nil {
			return nil, err
		}
		o := options.Find().SetSort(bson.D{{Key: fID, Value: 1}})
		if page > 0 {
			o.SetLimit(page)
		}
		raws, err := findAll(ctx, r.s.msg, filters, o)
		if err != nil {
			return nil, err
		}
		msgs := make([]stored, 0, len(raws))
		for _, raw := range raws {
			st, err := decodeMessage(raw)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, st)
		}
		slices.SortFunc(msgs, func(a, b stored) int { return strings.Compare(a.m.ID, b.m.ID) })
		more := false
		if page > 0 && len(msgs) > int(page) {
			msgs, more = msgs[:page], true // the other bucket queries' rest comes with the next page
		} else if page > 0 && len(msgs) == int(page) {
			more = true
		}
		for _, st := range msgs {
			if r.keep(st) {
				out = append(out, st.m)
			}
		}
		if !more || q.Full(len(out)) || len(msgs) == 0 {
			break
		}
		after = msgs[len(msgs)-1].m.ID
	}
	return q.Finish(out), nil
}

// keep reports whether the fetch returns a message read: after its
// topic's cursor and the read's bound, after the start, not acked, kept by
// the query (topic, expiry, Since).
func (r *fanoutRead) keep(st stored) bool {
	m := st.m
	if c, ok := r.cursors[m.Topic]; ok && !positionOf(st).after(c.pos) {
		return false
	}
	if r.bounded && st.stored.Before(r.bound.pos.t) {
		return false // a bucket's earlier part
	}
	if _, acked := r.acks[m.ID]; acked {
		return false
	}
	return m.ID > r.start && r.q.Keep(m)
}

// windowSize is the most messages of the settled window a fetch reads for
// settle.
const windowSize = 1000

// window returns the settled window: the matching topics' fanout
// messages stamped from the read's bound up to the settled horizon, in
// position order, their positions and expiry only, windowSize at most
// (truncated reports that more may follow).
func (r *fanoutRead) window(ctx context.Context) ([]stored, bool, error) {
	filters, err := r.from(ctx, bson.E{Key: fStored, Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(r.horizon)}}})
	if err != nil {
		return nil, false, err
	}
	o := options.Find().SetSort(bson.D{{Key: fStored, Value: 1}, {Key: fID, Value: 1}}).SetLimit(windowSize).
		SetProjection(bson.D{{Key: fMsgID, Value: 1}, {Key: fTopic, Value: 1}, {Key: fStored, Value: 1}, {Key: fExpireAt, Value: 1}})
	lists, err := findEach(ctx, r.s.msg, filters, o)
	if err != nil {
		return nil, false, err
	}
	// A full list ends where its query stopped: past its last position
	// the window is not known.
	var cut *position
	var out []stored
	for _, raws := range lists {
		for i, raw := range raws {
			st, err := decodeMessage(raw)
			if err != nil {
				return nil, false, err
			}
			if i == windowSize-1 {
				if p := positionOf(st); cut == nil || cut.after(p) {
					cut = &p
				}
			}
			if r.bounded && st.stored.Before(r.bound.pos.t) {
				continue
			}
			out = append(out, st)
		}
	}
	slices.SortFunc(out, comparePositions)
	truncated := cut != nil
	if cut != nil {
		out = slices.DeleteFunc(out, func(st stored) bool { return positionOf(st).after(*cut) })
	}
	if len(out) > windowSize {
		out, truncated = out[:windowSize], true
	}
	return out, truncated, nil
}

// comparePositions orders messages by position.
func comparePositions(a, b stored) int {
	switch {
	case positionOf(a).after(positionOf(b)):
		return 1
	case positionOf(b).after(positionOf(a)):
		return -1
	}
	return 0
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
// it may pass: in position order from the cursor, the messages stamped
// before the settled horizon (see Store.horizon) that the client acked,
// that were not
// due to it (an ID at or before the earliest start of its stored
// subscriptions matching the topic) or that expired, up to the first
// other one. It then deletes the individual acks the cursor covers, and
// those of messages that are not stored (any more) once older than
// Options.AckGrace. For a wildcard filter it moves the client's floor of
// the filter (a cursor document whose topic is the filter): the least
// position among the first messages the cursors of the filter's topics
// did not pass, and at most the settled horizon — every message before
// it is passed by its topic's cursor, so the next fetch of the filter
// reads from there. Failures are left for the next fetch: a cursor is an
// optimisation of the acks, never their only record.
func (s *Store) settle(ctx context.Context, q *storekit.Query, horizon time.Time, subs []subscription, cursors map[string]cursor, acks map[string]ack, msgs []stored, truncated bool) {
	t := q.Now
	byTopic := map[string][]stored{}
	for _, st := range msgs {
		if topic.Match(q.Match, st.m.Topic) {
			byTopic[st.m.Topic] = append(byTopic[st.m.Topic], st)
		}
	}
	read := map[string]bool{} // IDs of the messages read above their cursor
	var drop []string         // individual acks to delete
	floor := position{t: horizon}
	for tp, list := range byTopic {
		slices.SortFunc(list, comparePositions)
		c := cursors[tp]
		earliest, any := "", false
		for _, x := range subs {
			if !topic.Match(storekit.Inner(x.s.Filter), tp) {
				continue
			}
			if !any || x.start < earliest {
				earliest = x.start
			}
			any = true
		}
		var above []stored // the messages after the cursor, in position order
		for _, st := range list {
			if positionOf(st).after(c.pos) {
				read[st.m.ID] = true
				above = append(above, st)
			}
		}
		next, hi := c.pos, c.mongoID
		var covered []string
		passed := 0
		for _, st := range above {
			if !st.stored.Before(horizon) {
				break // not settled: a message stamped before it may still come
			}
			_, acked := acks[st.m.ID]
			due := !any || st.m.ID > earliest
			if !acked && due && !st.m.Expired(t) {
				break
			}
			next = positionOf(st)
			passed++
			if acked {
				covered = append(covered, st.m.ID)
				hi = max(hi, st.m.ID)
			}
		}
		first := 0 // the first message above the cursor that is known durable
		if passed > 0 && s.moveCursor(ctx, q.ClientID, tp, c, next, hi) {
			drop = append(drop, covered...)
			for _, id := range covered {
				read[id] = false
			}
			first = passed
		}
		if first < len(above) && floor.after(positionOf(above[first])) {
			floor = positionOf(above[first])
			floor.id = "" // from this stamp on: the message itself is read again
		}
	}
	if truncated && len(msgs) > 0 {
		// Past the window read nothing is known.
		if last := positionOf(msgs[len(msgs)-1]); floor.after(last) {
			floor = position{t: last.t}
		}
	}
	if topic.HasWildcard(q.Match) {
		if f, ok := cursors[q.Match]; !ok || floor.after(f.pos) {
			s.moveCursor(ctx, q.ClientID, q.Match, f, floor, "")
		}
	}
	// Acks of messages not read above their cursor in a whole window:
	// covered by it already, or of messages not stored (or stamped after
	// the horizon, which an ack older than AckGrace can only be if it came
	// before its message); kept for AckGrace.
	for id, a := range acks {
		if !truncated && !read[id] && topic.Match(q.Match, a.topic) && a.at.Before(t.Add(-s.opt.AckGrace)) {
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
