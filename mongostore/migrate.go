package mongostore

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
)

// index is one index a collection needs.
type index struct {
	name   string
	keys   bson.D
	unique bool
	ttl    bool // expire documents at the date of the key (expireAfterSeconds 0)
}

// indexes returns the indexes of every collection: the seeds' (as the
// seeds create them, but node: 1 for their node: 2, which servers now
// refuse), the unique keys the store's atomic steps rely on, and what its
// queries read by.
func (s *Store) indexes() []struct {
	coll *mongo.Collection
	ix   []index
} {
	k := func(fields ...string) bson.D {
		d := make(bson.D, len(fields))
		for i, f := range fields {
			d[i] = bson.E{Key: f, Value: 1}
		}
		return d
	}
	return []struct {
		coll *mongo.Collection
		ix   []index
	}{
		{s.client, []index{
			{name: "clientid_node", keys: k(cClientID, cNode)},               // seeds
			{name: "clientid_v", keys: k(cClientID, cVersion), unique: true}, // one write per version
			{name: "written", keys: k(cWritten)},                             // watches poll by it
		}},
		{s.sub, []index{
			{name: "clientid", keys: k(sClientID)}, // seeds
			{name: "clientid_topic", keys: k(sClientID, sTopic), unique: true},
		}},
		{s.msg, []index{
			{name: "sender_topic", keys: k(fSender, fTopic)}, // seeds
			{name: "topic_stored", keys: k(fTopic, fStored)},
			{name: "stored", keys: k(fStored)}, // watches poll by it
			{name: "expire_at", keys: k(fExpireAt), ttl: true},
		}},
		{s.retain, []index{
			{name: "topic", keys: k(fTopic), unique: true}, // seeds (unique: one per topic)
			{name: "expire_at", keys: k(fExpireAt), ttl: true},
		}},
		{s.acked, []index{
			{name: "clientid_topic", keys: k(aClientID, aTopic), unique: true},
		}},
		{s.ackedMsg, []index{
			{name: "clientid_msgid", keys: k(aClientID, aMsgID), unique: true},
			{name: "clientid_topic", keys: k(aClientID, aTopic)},
		}},
		{s.claim, []index{
			{name: "msgid_gen", keys: k(qMsgID, qGen), unique: true}, // one claim per generation
			{name: "topic", keys: k(qTopic)},
		}},
		{s.topics, []index{
			{name: "stored", keys: k(fStored)},
		}},
		{s.writer, nil},
		{s.groupClaim, []index{
			{name: "group_msgid", keys: k(gGroup, gMsgID)},
			{name: "until", keys: k(gUntil)},
			{name: "expire_at", keys: k(gExpireAt), ttl: true}, // tombstones
		}},
	}
}

// features is what the server has, as Migrate or the first watch found.
type features struct {
	ttl bool // TTL indexes
}

// Migrate creates the collections and indexes that are missing and
// keeps what exists, so running it again, also from several processes at
// once, is harmless. The expire_at indexes of mqtt_msg and mqtt_retain
// are TTL indexes (expireAfterSeconds 0: the server deletes a document at
// its expiry) where the server has them; where it has none (FerretDB
// says NotImplemented) they are plain indexes, expired documents are
// never returned all the same, and DeleteExpired deletes them (see TTL).
func (s *Store) Migrate(ctx context.Context) error {
	const op = "Migrate"
	if err := s.kit.Enter(ctx, op); err != nil {
		return err
	}
	existing, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return s.fail(ctx, op, err)
	}
	have := map[string]bool{}
	for _, n := range existing {
		have[n] = true
	}
	ttl := true
	for _, c := range s.indexes() {
		if !have[c.coll.Name()] {
			if err := s.db.CreateCollection(ctx, c.coll.Name()); err != nil && !hasCode(err, codeNamespaceExist) {
				return s.fail(ctx, op, s.what("collection "+c.coll.Name(), err))
			}
		}
		for _, ix := range c.ix {
			made, err := s.createIndex(ctx, c.coll, ix)
			if err != nil {
				return s.fail(ctx, op, s.what(fmt.Sprintf("index %s.%s", c.coll.Name(), ix.name), err))
			}
			if ix.ttl && !made {
				ttl = false
			}
		}
	}
	s.featMu.Lock()
	s.feat = &features{ttl: ttl}
	s.featMu.Unlock()
	return nil
}

// createIndex creates ix on c unless it exists. A TTL index the server
// refuses is made a plain one; made reports whether ix is as asked (a
// TTL index where one was asked).
func (s *Store) createIndex(ctx context.Context, c *mongo.Collection, ix index) (made bool, err error) {
	o := options.Index().SetName(ix.name)
	if ix.unique {
		o.SetUnique(true)
	}
	if ix.ttl {
		_, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name).SetExpireAfterSeconds(0)})
		switch {
		case err == nil:
			return true, nil
		case hasCode(err, codeIndexConflict, codeIndexKeySpec):
			// A plain index of that name from a Migrate on a server without
			// TTL indexes (or one made by hand): keep it.
			return s.isTTL(ctx, c, ix.name)
		case !unsupported(err):
			return false, err
		}
	}
	_, err = c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: o})
	if err != nil && hasCode(err, codeIndexConflict, codeIndexKeySpec) {
		err = fmt.Errorf("an index named %s with other keys or options exists: drop it, and Migrate makes it anew (%w)", ix.name, err)
	}
	return !ix.ttl && err == nil, err
}

// isTTL reports whether the index name of c has an expireAfterSeconds.
func (s *Store) isTTL(ctx context.Context, c *mongo.Collection, name string) (bool, error) {
	cur, err := c.Indexes().List(ctx)
	if err != nil {
		return false, err
	}
	var specs []bson.Raw
	if err := cur.All(ctx, &specs); err != nil {
		return false, err
	}
	for _, sp := range specs {
		if n, _ := sp.Lookup("name").StringValueOK(); n == name {
			_, err := sp.LookupErr("expireAfterSeconds")
			return err == nil, nil
		}
	}
	return false, nil
}

// TTL reports whether the server deletes expired messages by itself: the
// expire_at indexes of mqtt_msg and mqtt_retain are TTL indexes. It asks
// the server (listIndexes) unless Migrate ran in this process. Where it
// reports false, run DeleteExpired now and then; expired messages are
// never returned either way.
func (s *Store) TTL(ctx context.Context) (bool, error) {
	const op = "TTL"
	if err := s.kit.Enter(ctx, op); err != nil {
		return false, err
	}
	s.featMu.Lock()
	f := s.feat
	s.featMu.Unlock()
	if f != nil {
		return f.ttl, nil
	}
	ttl := true
	for _, c := range []*mongo.Collection{s.msg, s.retain} {
		ok, err := s.isTTL(ctx, c, "expire_at")
		if err != nil {
			return false, s.fail(ctx, op, err)
		}
		ttl = ttl && ok
	}
	return ttl, nil
}

// what describes a database error with what it was about; the kit still
// classifies the error (see storekit.Kit.Fail).
func (s *Store) what(what string, err error) error {
	if err == nil {
		return nil
	}
	return &persist.Error{What: what, Err: err}
}
