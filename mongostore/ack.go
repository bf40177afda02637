package mongostore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Fields of an individual fanout ack (mqtt_acked_msg) and of a fanout
// cursor (mqtt_acked: the seeds' clientid, topic and mongo_id, then this
// package's watermark).
const (
	aClientID = "clientid"
	aTopic    = "topic"
	aMsgID    = "msgid"
	aAt       = "at"       // when the ack was stored (a date)
	aMongoID  = "mongo_id" // the highest message ID the watermark passed that the client acked
	aWT       = "wt"       // the watermark: the stamp (a date) …
	aWID      = "wid"      // … and the ID of the last message it passed
)

// Acked records a client's acks (see persist.Store). An ack of a queue
// message the client holds the latest claim of writes the claim's final
// generation (so that no consumer can take the message any more) and then
// deletes the message and its claims. Every other ack is a fanout ack,
// inserted into mqtt_acked_msg (unique per client and message ID, so an
// ack given twice is stored once); fanout fetches fold them into the
// client's watermark.
func (s *Store) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	const op = "Acked"
	if err := s.kit.Acked(ctx, clientID, acks); err != nil {
		return err
	}
	if len(acks) == 0 {
		return nil
	}
	what := fmt.Sprintf("client %q", clientID)
	ids := make([]string, 0, len(acks))
	seen := make(map[string]bool, len(acks))
	for _, a := range acks {
		if !seen[a.ID] {
			seen[a.ID] = true
			ids = append(ids, a.ID)
		}
	}
	claims, err := s.claims(ctx, bson.D{{Key: qMsgID, Value: bson.D{{Key: "$in", Value: strs(ids)}}}})
	if err != nil {
		return s.fail(ctx, op, s.what(what, err))
	}
	t := now()
	var finals []bson.D
	var fanout []any
	done := make(map[string]bool, len(acks))
	for _, a := range acks {
		if done[a.ID] {
			continue
		}
		done[a.ID] = true
		if c := claims[a.ID]; c != nil {
			// A queue message: only its claimant's ack counts, and none
			// is a fanout ack.
			if c.client == clientID && !c.final {
				finals = append(finals, claimDoc(a.ID, a.Topic, clientID, c.gen+1, t, t, true))
			}
			continue
		}
		fanout = append(fanout, bson.D{
			{Key: aClientID, Value: clientID},
			{Key: aTopic, Value: a.Topic},
			{Key: aMsgID, Value: a.ID},
			{Key: aAt, Value: bson.NewDateTimeFromTime(t)},
		})
	}
	if len(fanout) > 0 {
		if _, err := s.ackedMsg.InsertMany(ctx, fanout, options.InsertMany().SetOrdered(false)); err != nil {
			if _, ok := onlyDuplicates(err); !ok {
				return s.fail(ctx, op, s.what(what, err))
			}
		}
	}
	won, err := s.insertGenerations(ctx, finals)
	if err != nil {
		return s.fail(ctx, op, s.what(what, err))
	}
	var consumed []string
	for id := range won {
		consumed = append(consumed, id)
	}
	if err := s.deleteMessages(ctx, consumed); err != nil {
		return s.fail(ctx, op, s.what(what, err))
	}
	return nil
}
