package mongostore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// Fields of a subscription document (mqtt_sub): the seeds' first, then
// this package's.
const (
	sClientID = "clientid"
	sTopic    = "topic" // the filter, as the seeds name it
	sQoS      = "qos"
	sNoLocal  = "no_local"
	sRAP      = "retain_as_published"
	sRH       = "retain_handling"
	sID       = "identifier"
	sStart    = "start" // the fanout start: the ID made when first stored ("" with History)
)

// Subscribed adds, updates and removes a client's subscriptions (see
// persist.Store): the removed filters are deleted, then each subscription
// is upserted on the unique (clientid, topic) index, its start set only
// when it is inserted (a repeated subscription keeps its start).
func (s *Store) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	const op = "Subscribed"
	subs, err := s.kit.Subscribed(ctx, clientID, subs, removed)
	if err != nil {
		return err
	}
	if len(subs) == 0 && len(removed) == 0 {
		return nil
	}
	what := fmt.Sprintf("client %q", clientID)
	if len(removed) > 0 {
		in := make(bson.A, len(removed))
		for i, f := range removed {
			in[i] = f
		}
		if _, err := s.sub.DeleteMany(ctx, bson.D{{Key: sClientID, Value: clientID}, {Key: sTopic, Value: bson.D{{Key: "$in", Value: in}}}}); err != nil {
			return s.fail(ctx, op, s.what(what, err))
		}
	}
	models := make([]mongo.WriteModel, len(subs))
	for i := range subs {
		x := &subs[i]
		models[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: sClientID, Value: clientID}, {Key: sTopic, Value: x.Filter}}).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{
					{Key: sQoS, Value: int32(x.QoS)},
					{Key: sNoLocal, Value: x.NoLocal},
					{Key: sRAP, Value: x.RetainAsPublished},
					{Key: sRH, Value: int32(x.RetainHandling)},
					{Key: sID, Value: int32(x.Identifier)},
				}},
				{Key: "$setOnInsert", Value: bson.D{{Key: sStart, Value: storekit.Start(x)}}},
			}).
			SetUpsert(true)
	}
	// Two upserts of one subscription at once may both try to insert
	// (the unique index lets one in): the other then updates.
	for attempt := 0; len(models) > 0; attempt++ {
		dups, err := s.bulk(ctx, s.sub, models)
		if err != nil {
			return s.fail(ctx, op, s.what(what, err))
		}
		if len(dups) == 0 {
			return nil
		}
		if attempt >= 5 {
			return s.fail(ctx, op, s.what(what, fmt.Errorf("%d subscriptions still collide with concurrent writes after %d attempts", len(dups), attempt+1)))
		}
		var again []mongo.WriteModel
		for i, m := range models {
			if dups[i] {
				again = append(again, m)
			}
		}
		models = again
	}
	return nil
}

// subscription is a stored subscription and its fanout start.
type subscription struct {
	s     persist.Subscription
	start string
}

// storedSubs reads a client's subscriptions from coll.
func (s *Store) storedSubs(ctx context.Context, coll *mongo.Collection, clientID string) ([]subscription, error) {
	cur, err := coll.Find(ctx, bson.D{{Key: sClientID, Value: clientID}})
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, err
	}
	out := make([]subscription, 0, len(raws))
	for _, r := range raws {
		var x subscription
		elems, _ := r.Elements()
		owner := ""
		for _, e := range elems {
			v := e.Value()
			n, _ := v.AsInt64OK()
			b, _ := v.BooleanOK()
			switch e.Key() {
			case sClientID:
				owner = textOf(v)
			case sTopic:
				x.s.Filter = textOf(v)
			case sQoS:
				x.s.QoS = byte(n)
			case sNoLocal:
				x.s.NoLocal = b
			case sRAP:
				x.s.RetainAsPublished = b
			case sRH:
				x.s.RetainHandling = byte(n)
			case sID:
				x.s.Identifier = int(n)
			case sStart:
				x.start = textOf(v)
			}
		}
		if owner == clientID {
			out = append(out, x)
		}
	}
	return out, nil
}

// Subscriptions returns a client's stored subscriptions, ordered by filter
// byte-wise.
func (s *Store) Subscriptions(ctx context.Context, clientID string) ([]persist.Subscription, error) {
	const op = "Subscriptions"
	if err := s.kit.Lookup(ctx, op, clientID); err != nil {
		return nil, err
	}
	subs, err := s.storedSubs(ctx, s.lookupSub, clientID)
	if err != nil {
		return nil, s.fail(ctx, op, s.what(fmt.Sprintf("client %q", clientID), err))
	}
	out := make([]persist.Subscription, len(subs))
	for i, x := range subs {
		out[i] = x.s
	}
	storekit.SortSubscriptions(out)
	return out, nil
}
