package mongostore

import (
	"context"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Fields of a claim document (mqtt_claim): generation gen of the claim of
// queue message msgid. Its _id is claimID(msgid, gen), so that each
// generation is written once: of two consumers taking a message at once,
// one inserts the next generation and the other fails on the _id.
const (
	qMsgID    = "msgid"
	qGen      = "gen"
	qTopic    = "topic"
	qClientID = "clientid"
	qUntil    = "until" // the lease's end (a date)
	qFinal    = "acked" // true: the claimant acked the message, which is being deleted
	qAt       = "at"    // when the generation was written (a date)
)

// claimID is the _id of generation gen of message id's claim.
func claimID(msgID string, gen int64) string {
	return msgID + "/" + strconv.FormatInt(gen, 10)
}

// claim is the latest generation of a queue message's claim.
type claim struct {
	ids    []string // _id of every generation read
	gen    int64
	client string
	until  time.Time
	final  bool
}

// claims reads the claims of the queue messages matching filter (a
// query on the claim's topic) or with the IDs msgIDs, by message ID.
func (s *Store) claims(ctx context.Context, filter bson.D) (map[string]*claim, error) {
	if filter == nil {
		filter = bson.D{}
	}
	cur, err := s.claim.Find(ctx, filter)
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, err
	}
	out := map[string]*claim{}
	for _, r := range raws {
		id := textOf(r.Lookup("_id"))
		msgID := textOf(r.Lookup(qMsgID))
		gen, _ := r.Lookup(qGen).AsInt64OK()
		c := out[msgID]
		if c == nil {
			c = &claim{gen: -1}
			out[msgID] = c
		}
		c.ids = append(c.ids, id)
		if gen <= c.gen {
			continue
		}
		c.gen = gen
		c.client = textOf(r.Lookup(qClientID))
		if dt, ok := r.Lookup(qUntil).DateTimeOK(); ok {
			c.until = time.UnixMilli(dt)
		}
		c.final, _ = r.Lookup(qFinal).BooleanOK()
	}
	return out, nil
}

// claimDoc is generation gen of message msgID's claim by clientID.
func claimDoc(msgID, topic, clientID string, gen int64, until, at time.Time, final bool) bson.D {
	return bson.D{
		{Key: "_id", Value: claimID(msgID, gen)},
		{Key: qMsgID, Value: msgID},
		{Key: qGen, Value: gen},
		{Key: qTopic, Value: topic},
		{Key: qClientID, Value: clientID},
		{Key: qUntil, Value: bson.NewDateTimeFromTime(until)},
		{Key: qFinal, Value: final},
		{Key: qAt, Value: bson.NewDateTimeFromTime(at)},
	}
}

// insertGenerations inserts claim documents and returns the message IDs
// whose generation this call wrote (the others were written first by
// another call).
func (s *Store) insertGenerations(ctx context.Context, docs []bson.D) (map[string]bool, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	lost, err := insertFirst(ctx, s.claim, docs)
	if err != nil {
		return nil, err
	}
	won := make(map[string]bool, len(docs))
	for i, d := range docs {
		if !lost[i] {
			won[d[1].Value.(string)] = true
		}
	}
	return won, nil
}

// insertFirst inserts docs into coll in one unordered InsertMany and
// returns the indexes of those another write took first (a duplicate
// _id); any other error is returned.
func insertFirst(ctx context.Context, coll *mongo.Collection, docs []bson.D) (map[int]bool, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	in := make([]any, len(docs))
	for i, d := range docs {
		in[i] = d
	}
	_, err := coll.InsertMany(ctx, in, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil, nil
	}
	lost, ok := onlyDuplicates(err)
	if !ok {
		return nil, err
	}
	return lost, nil
}

// dropGenerations deletes the claim documents with these _ids (older
// generations; harmless to leave, as the latest counts).
func (s *Store) dropGenerations(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	_, _ = s.claim.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: strs(ids)}}}})
}

// strs returns ss as a BSON array.
func strs(ss []string) bson.A {
	a := make(bson.A, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}

// topicQuery returns the condition on a topic field that a read of filter
// needs: the filter itself when it has no wildcard, else the range of
// topics starting with its literal levels (nil when it starts with a
// wildcard: every topic). What the range lets through that the filter
// does not match, the read leaves out.
func topicQuery(field, filter string) bson.D {
	i := strings.IndexAny(filter, "+#")
	if i < 0 {
		return bson.D{{Key: field, Value: filter}}
	}
	prefix := strings.TrimSuffix(filter[:i], "/")
	if prefix == "" {
		return nil
	}
	r := bson.D{{Key: "$gte", Value: prefix}}
	if hi, ok := nextPrefix(prefix); ok {
		r = append(r, bson.E{Key: "$lt", Value: hi})
	}
	return bson.D{{Key: field, Value: r}}
}

// nextPrefix returns the least string after every string starting with p:
// p with its last character incremented.
func nextPrefix(p string) (string, bool) {
	rs := []rune(p)
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i] + 1
		if r == 0xD800 {
			r = 0xE000
		}
		if r <= 0x10FFFF {
			rs[i] = r
			return string(rs[:i+1]), true
		}
	}
	return "", false
}

// deleteMessages deletes messages and their claims (a queue message its
// claimant acked).
func (s *Store) deleteMessages(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.msg.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: strs(ids)}}}}); err != nil {
		return err
	}
	_, err := s.claim.DeleteMany(ctx, bson.D{{Key: qMsgID, Value: bson.D{{Key: "$in", Value: strs(ids)}}}})
	return err
}
