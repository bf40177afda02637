package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// sweepBatch is how many individual acks DeleteExpired checks per call.
const sweepBatch = 1000

// DeleteExpired deletes what is left behind and returns how many
// documents it deleted: expired messages and retained messages (a server
// with TTL indexes deletes them by itself, see TTL), queue messages whose
// claimant acked them but stopped before deleting them, claims of
// messages no longer stored, superseded client versions older than a
// minute, individual fanout acks older than Options.AckGrace of messages
// that are not stored (up to 1000 of those per call), group claims whose
// last lease ran out ten minutes ago (up to 1000 IDs per call, see
// Store.Claim), and the writer
// documents of stores not heard of for an hour (stopped without Close).
// Nothing it deletes is ever read again: it only saves space.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	const op = "DeleteExpired"
	if err := s.kit.Enter(ctx, op); err != nil {
		return 0, err
	}
	t := now()
	var n int64
	expired := bson.D{{Key: fExpireAt, Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(t)}}}}
	for _, c := range []struct {
		what   string
		delete func() (int64, error)
	}{
		{"messages", func() (int64, error) {
			r, err := s.msg.DeleteMany(ctx, expired)
			if err != nil {
				return 0, err
			}
			return r.DeletedCount, nil
		}},
		{"retained messages", func() (int64, error) {
			r, err := s.retain.DeleteMany(ctx, expired)
			if err != nil {
				return 0, err
			}
			return r.DeletedCount, nil
		}},
		{"claims", func() (int64, error) { return s.sweepClaims(ctx, t) }},
		{"client versions", func() (int64, error) {
			r, err := s.client.DeleteMany(ctx, bson.D{
				{Key: cTomb, Value: bson.D{{Key: "$exists", Value: true}}},
				{Key: cWritten, Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t.Add(-tombLife))}}},
			})
			if err != nil {
				return 0, err
			}
			return r.DeletedCount, nil
		}},
		{"acks", func() (int64, error) { return s.sweepAcks(ctx, t) }},
		{"group claims", func() (int64, error) { return s.sweepGroupClaims(ctx, t) }},
		{"writers", func() (int64, error) {
			r, err := s.writer.DeleteMany(ctx, bson.D{{Key: wAt, Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t.Add(-time.Hour))}}}})
			if err != nil {
				return 0, err
			}
			return r.DeletedCount, nil
		}},
	} {
		d, err := c.delete()
		n += d
		if err != nil {
			return n, s.fail(ctx, op, s.what(c.what, err))
		}
	}
	return n, nil
}

// sweepClaims finishes the acks of claimants that stopped half way (a
// final claim generation older than a minute: its message is deleted)
// and deletes the claims of messages that are not stored.
func (s *Store) sweepClaims(ctx context.Context, t time.Time) (int64, error) {
	claims, err := s.claims(ctx, bson.D{})
	if err != nil || len(claims) == 0 {
		return 0, err
	}
	ids := make([]string, 0, len(claims))
	for id := range claims {
		ids = append(ids, id)
	}
	have, err := s.existing(ctx, ids)
	if err != nil {
		return 0, err
	}
	var n int64
	var gone []string
	for id, c := range claims {
		if !have[id] || c.final && c.until.UnixMilli() < t.UnixMilli()-tombLife.Milliseconds() {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	r, err := s.msg.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: strs(gone)}}}})
	if err != nil {
		return 0, err
	}
	n += r.DeletedCount
	r, err = s.claim.DeleteMany(ctx, bson.D{{Key: qMsgID, Value: bson.D{{Key: "$in", Value: strs(gone)}}}})
	if err != nil {
		return n, err
	}
	return n + r.DeletedCount, nil
}

// existing returns which of the message IDs are stored.
func (s *Store) existing(ctx context.Context, ids []string) (map[string]bool, error) {
	cur, err := s.msg.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: strs(ids)}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(raws))
	for _, r := range raws {
		out[textOf(r.Lookup("_id"))] = true
	}
	return out, nil
}

// sweepAcks deletes up to sweepBatch individual fanout acks older than
// AckGrace whose message is not stored.
func (s *Store) sweepAcks(ctx context.Context, t time.Time) (int64, error) {
	before := bson.NewDateTimeFromTime(t.Add(-s.opt.AckGrace))
	cur, err := s.ackedMsg.Find(ctx, bson.D{{Key: aAt, Value: bson.D{{Key: "$lt", Value: before}}}},
		options.Find().SetLimit(sweepBatch).SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: aMsgID, Value: 1}}))
	if err != nil {
		return 0, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil || len(raws) == 0 {
		return 0, err
	}
	ids := make([]string, len(raws))
	for i, r := range raws {
		ids[i] = textOf(r.Lookup(aMsgID))
	}
	have, err := s.existing(ctx, ids)
	if err != nil {
		return 0, err
	}
	var gone bson.A
	for i, r := range raws {
		if !have[ids[i]] {
			gone = append(gone, r.Lookup("_id"))
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	r, err := s.ackedMsg.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: gone}}}})
	if err != nil {
		return 0, err
	}
	return r.DeletedCount, nil
}
