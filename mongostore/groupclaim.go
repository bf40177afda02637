package mongostore

import (
	"context"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Fields of a group claim document (mqtt_group_claim): generation gen of
// the claim of message msgid in shared subscription group group. Its _id
// is groupClaimID(group, msgid, gen), so that each generation is written
// once: of two members taking an ID at once, one inserts the next
// generation and the other fails on the _id.
const (
	gGroup    = "group"
	gMsgID    = "msgid"
	gGen      = "gen"
	gOwner    = "clientid" // the member; "" when released
	gUntil    = "until"    // the lease's end (a date)
	gAt       = "at"       // when the generation was written (a date)
	gTomb     = "tomb"     // true: the chain is being deleted (see sweepGroupClaims)
	gExpireAt = fExpireAt  // a tombstone's: when it may go (TTL index)
)

// groupClaimGrace is how long after its last lease ran out a group claim
// is kept before DeleteExpired deletes it.
const groupClaimGrace = 10 * time.Minute

// groupClaimID is the _id of generation gen of the claim of message id in
// group: the group's length keeps the parts apart.
func groupClaimID(group, id string, gen int64) string {
	return strconv.Itoa(len(group)) + ":" + group + ":" + id + "/" + strconv.FormatInt(gen, 10)
}

// groupGen is one generation of a group claim, as read.
type groupGen struct {
	id        string // _id
	gen       int64
	owner     string
	until, at time.Time
	tomb      bool
}

// groupChain is the generations of one ID's claim in a group.
type groupChain struct {
	group, msgID string
	last         groupGen   // the latest generation
	older        []groupGen // the others
}

// groupSettle is how old a generation that is not the latest must be before
// it is deleted: a Claim (or a sweep) reads the generations and inserts
// the next within WriteTimeout, so a write decided from the generation
// before it, which would take its _id again once it is gone, is over
// after twice that, plus the clock skew between the writing and the
// deleting nodes.
func (s *Store) groupSettle() time.Duration { return 2*s.opt.WriteTimeout + 2*s.opt.ClockSkew }

// Claim claims the message IDs in a shared subscription group for owner
// until lease from now (see persist.Claimer), on the reading node's
// clock. It reads the claims of the IDs (mqtt_group_claim) and inserts
// the next generation of each ID's claim that is unclaimed, whose lease
// ran out or that owner holds already, in one unordered InsertMany: of
// two members claiming an ID at once, from any node, one inserts the
// generation and the other fails on the _id (a duplicate key) and does
// not get the ID. A lease of zero or less inserts, for each ID whose
// claim owner holds, a released generation (no owner, run out), which
// anyone can claim at once. Older generations are deleted once they are
// settled (see the package doc, # Group claims).
func (s *Store) Claim(ctx context.Context, group, owner string, lease time.Duration, ids ...string) ([]string, error) {
	const op = "Claim"
	if err := s.kit.Claim(ctx, group, owner, ids); err != nil || len(ids) == 0 {
		return nil, err
	}
	won, err := s.claimGroup(ctx, group, owner, lease, ids)
	return won, s.fail(ctx, op, err)
}

// claimGroup does Claim's work.
func (s *Store) claimGroup(ctx context.Context, group, owner string, lease time.Duration, ids []string) ([]string, error) {
	// Reading the generations and inserting the next take WriteTimeout at
	// most (see groupSettle).
	ctx, cancel := context.WithTimeout(ctx, s.opt.WriteTimeout)
	defer cancel()
	t := now()
	uniq := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	chains, err := s.groupChains(ctx, bson.D{{Key: gGroup, Value: group}, {Key: gMsgID, Value: bson.D{{Key: "$in", Value: strs(uniq)}}}})
	if err != nil {
		return nil, err
	}
	var docs []bson.D
	var of []string // the ID of each of docs
	for _, id := range uniq {
		c := chains[id]
		switch {
		case lease <= 0:
			if c != nil && !c.last.tomb && c.last.owner == owner && c.last.until.After(t) {
				docs = append(docs, groupClaimDoc(group, id, "", c.last.gen+1, t, t))
				of = append(of, id)
			}
		case c == nil:
			docs = append(docs, groupClaimDoc(group, id, owner, 0, t.Add(lease), t))
			of = append(of, id)
		case !c.last.tomb && (!c.last.until.After(t) || c.last.owner == owner):
			docs = append(docs, groupClaimDoc(group, id, owner, c.last.gen+1, t.Add(lease), t))
			of = append(of, id)
		}
	}
	lost, err := insertFirst(ctx, s.groupClaim, docs)
	if err != nil {
		return nil, err
	}
	got := make(map[string]bool, len(docs))
	for i, id := range of {
		if !lost[i] {
			got[id] = true
		}
	}
	// Generations no later write can be decided from go: those before the
	// latest read (all of them when this call wrote a newer one) that are
	// settled.
	var old []string
	before := t.Add(-s.groupSettle())
	for id, c := range chains {
		gens := c.older
		if got[id] {
			gens = append(gens, c.last)
		}
		for _, g := range gens {
			if g.at.Before(before) {
				old = append(old, g.id)
			}
		}
	}
	if len(old) > 0 {
		_, _ = s.groupClaim.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: strs(old)}}}})
	}
	if lease <= 0 {
		return nil, nil
	}
	var won []string
	for _, id := range ids {
		if got[id] {
			won = append(won, id)
		}
	}
	return won, nil
}

// groupClaimDoc is generation gen of the claim of message id in group by
// owner ("": released).
func groupClaimDoc(group, id, owner string, gen int64, until, at time.Time) bson.D {
	return bson.D{
		{Key: "_id", Value: groupClaimID(group, id, gen)},
		{Key: gGroup, Value: group},
		{Key: gMsgID, Value: id},
		{Key: gGen, Value: gen},
		{Key: gOwner, Value: owner},
		{Key: gUntil, Value: bson.NewDateTimeFromTime(until)},
		{Key: gAt, Value: bson.NewDateTimeFromTime(at)},
	}
}

// groupChains reads the group claims matching filter, by message ID (the
// filter names one group).
func (s *Store) groupChains(ctx context.Context, filter bson.D) (map[string]*groupChain, error) {
	cur, err := s.groupClaim.Find(ctx, filter)
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, err
	}
	out := map[string]*groupChain{}
	for _, r := range raws {
		g := groupGen{id: textOf(r.Lookup("_id")), owner: textOf(r.Lookup(gOwner))}
		g.gen, _ = r.Lookup(gGen).AsInt64OK()
		if dt, ok := r.Lookup(gUntil).DateTimeOK(); ok {
			g.until = time.UnixMilli(dt)
		}
		if dt, ok := r.Lookup(gAt).DateTimeOK(); ok {
			g.at = time.UnixMilli(dt)
		}
		g.tomb, _ = r.Lookup(gTomb).BooleanOK()
		id := textOf(r.Lookup(gMsgID))
		c := out[id]
		switch {
		case c == nil:
			out[id] = &groupChain{group: textOf(r.Lookup(gGroup)), msgID: id, last: g}
		case g.gen > c.last.gen:
			c.older = append(c.older, c.last)
			c.last = g
		default:
			c.older = append(c.older, g)
		}
	}
	return out, nil
}

// sweepGroupClaims deletes group claims whose last lease ran out more
// than groupClaimGrace ago, up to sweepBatch IDs per call, in two steps
// so that no claim is decided from a chain read half deleted: first it
// inserts a tombstone as the chain's next generation (which no Claim
// takes; one that decided from the generation before fails on its _id)
// and deletes the generations before it; then the tombstones go, by the
// TTL index on expire_at or here, once settled (see groupSettle): no Claim
// then still decides from what was there before them.
func (s *Store) sweepGroupClaims(ctx context.Context, t time.Time) (int64, error) {
	r, err := s.groupClaim.DeleteMany(ctx, bson.D{{Key: gExpireAt, Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(t)}}}})
	if err != nil {
		return 0, err
	}
	n := r.DeletedCount
	cur, err := s.groupClaim.Find(ctx, bson.D{
		{Key: gUntil, Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t.Add(-groupClaimGrace))}}},
		{Key: gTomb, Value: bson.D{{Key: "$exists", Value: false}}},
	}, options.Find().SetLimit(sweepBatch).SetProjection(bson.D{{Key: gGroup, Value: 1}, {Key: gMsgID, Value: 1}}))
	if err != nil {
		return n, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil || len(raws) == 0 {
		return n, err
	}
	byGroup := map[string][]string{}
	for _, r := range raws {
		g := textOf(r.Lookup(gGroup))
		byGroup[g] = append(byGroup[g], textOf(r.Lookup(gMsgID)))
	}
	for group, ids := range byGroup {
		d, err := s.tombGroupClaims(ctx, group, ids, t)
		n += d
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// tombGroupClaims tombstones the claims of ids in group whose last lease
// ran out more than groupClaimGrace before t (see sweepGroupClaims).
func (s *Store) tombGroupClaims(ctx context.Context, group string, ids []string, t time.Time) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.WriteTimeout) // see groupSettle
	defer cancel()
	chains, err := s.groupChains(ctx, bson.D{{Key: gGroup, Value: group}, {Key: gMsgID, Value: bson.D{{Key: "$in", Value: strs(ids)}}}})
	if err != nil {
		return 0, err
	}
	var docs []bson.D
	var cs []*groupChain
	for _, c := range chains {
		if c.last.tomb || !c.last.until.Before(t.Add(-groupClaimGrace)) {
			continue
		}
		d := groupClaimDoc(group, c.msgID, "", c.last.gen+1, t, t)
		d = append(d, bson.E{Key: gTomb, Value: true}, bson.E{Key: gExpireAt, Value: bson.NewDateTimeFromTime(t.Add(s.groupSettle()))})
		docs = append(docs, d)
		cs = append(cs, c)
	}
	lost, err := insertFirst(ctx, s.groupClaim, docs)
	if err != nil {
		return 0, err
	}
	var old []string
	for i, c := range cs {
		if lost[i] {
			continue // claimed meanwhile
		}
		old = append(old, c.last.id)
		for _, g := range c.older {
			old = append(old, g.id)
		}
	}
	if len(old) == 0 {
		return 0, nil
	}
	r, err := s.groupClaim.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: strs(old)}}}})
	if err != nil {
		return 0, err
	}
	return r.DeletedCount, nil
}
