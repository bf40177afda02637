package mongostore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Fields of a client document (mqtt_client): the seeds' first, then this
// package's.
const (
	cClientID    = "clientid"
	cState       = "state" // 1 connected, 0 disconnected
	cNode        = "node"
	cOnlineAt    = "online_at"  // Unix seconds, as the seeds
	cOfflineAt   = "offline_at" // Unix seconds, or null as the seeds until the first disconnect
	cOnlineAtMs  = "online_at_ms"
	cOfflineAtMs = "offline_at_ms"
	cUsername    = "username"
	cPeerHost    = "peerhost"
	cVersion     = "v"        // the write's version: 1, 2, … per client
	cWritten     = "written"  // when the version was written (a date)
	cTomb        = "t"        // in a superseded version's tombstone: its client ID
	cReleased    = "released" // true in a tombstone-like note of a disconnect that changed nothing (see release)
)

// tombLife is how long the tombstone of a superseded client version is
// kept: longer than any Connected takes (connectTimeout), so that a write
// decided on a state read before can never take its version's place.
const tombLife = time.Minute

// connectTimeout bounds one Connected.
const connectTimeout = 30 * time.Second

// versionID is the _id of version v of a client's document: unique per
// client and version, and kept (in a tombstone) after the version is
// superseded, so that a version is written once.
func versionID(clientID string, v int64) string {
	return strconv.Itoa(len(clientID)) + ":" + clientID + ":" + strconv.FormatInt(v, 10)
}

// clientDoc returns version v of c's document.
func clientDoc(c *persist.Client, v int64, written time.Time) bson.D {
	state := int32(0)
	if c.Online {
		state = 1
	}
	secs := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.Unix()
	}
	d := bson.D{
		{Key: "_id", Value: versionID(c.ID, v)},
		{Key: cClientID, Value: c.ID},
		{Key: cState, Value: state},
		{Key: cNode, Value: c.Node},
		{Key: cOnlineAt, Value: secs(c.OnlineAt)},
		{Key: cOfflineAt, Value: secs(c.OfflineAt)},
	}
	if !c.OnlineAt.IsZero() {
		d = append(d, bson.E{Key: cOnlineAtMs, Value: c.OnlineAt.UnixMilli()})
	}
	if !c.OfflineAt.IsZero() {
		d = append(d, bson.E{Key: cOfflineAtMs, Value: c.OfflineAt.UnixMilli()})
	}
	d = append(d,
		bson.E{Key: cUsername, Value: c.Username},
		bson.E{Key: cPeerHost, Value: c.PeerHost},
		bson.E{Key: cVersion, Value: v},
		bson.E{Key: cWritten, Value: bson.NewDateTimeFromTime(written)},
	)
	return bucketFields(d, cWritten, written)
}

// clientVersion is a stored version of a client's document.
type clientVersion struct {
	id string
	v  int64
	c  persist.Client
}

func decodeClient(raw bson.Raw) clientVersion {
	var cv clientVersion
	elems, _ := raw.Elements()
	var onS, offS, onMs, offMs int64
	for _, e := range elems {
		v := e.Value()
		switch e.Key() {
		case "_id":
			cv.id = textOf(v)
		case cClientID:
			cv.c.ID = textOf(v)
		case cState:
			n, _ := v.AsInt64OK()
			cv.c.Online = n == 1
		case cNode:
			cv.c.Node = textOf(v)
		case cOnlineAt:
			onS, _ = v.AsInt64OK()
		case cOfflineAt:
			offS, _ = v.AsInt64OK()
		case cOnlineAtMs:
			onMs, _ = v.AsInt64OK()
		case cOfflineAtMs:
			offMs, _ = v.AsInt64OK()
		case cUsername:
			cv.c.Username = textOf(v)
		case cPeerHost:
			cv.c.PeerHost = textOf(v)
		case cVersion:
			cv.v, _ = v.AsInt64OK()
		}
	}
	at := func(ms, s int64) time.Time {
		switch {
		case ms != 0:
			return time.UnixMilli(ms)
		case s != 0:
			return time.Unix(s, 0)
		}
		return time.Time{}
	}
	cv.c.OnlineAt, cv.c.OfflineAt = at(onMs, onS), at(offMs, offS)
	return cv
}

// versions returns the live (not superseded) versions of a client's
// document, the latest first: one, but for a moment after a write or
// after a writer stopped half way.
func (s *Store) versions(ctx context.Context, coll *mongo.Collection, clientID string) ([]clientVersion, error) {
	cur, err := coll.Find(ctx, bson.D{{Key: cClientID, Value: clientID}}, options.Find().SetSort(bson.D{{Key: cVersion, Value: -1}}))
	if err != nil {
		return nil, err
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, err
	}
	out := make([]clientVersion, 0, len(raws))
	for _, r := range raws {
		if cv := decodeClient(r); cv.c.ID == clientID {
			out = append(out, cv)
		}
	}
	return out, nil
}

// Connected records a client's connection state (see persist.Store).
//
// Each write is a new version of the client's document, decided from the
// latest one and inserted under a key unique to the client and version
// (see the package doc, # Atomic steps): of two writes decided from the
// same version, one is inserted and the other decides again from the
// newer state, so a disconnect from a node the client has left never
// overwrites its connect on the new one. The superseded versions become
// tombstones.
func (s *Store) Connected(ctx context.Context, c *persist.Client) error {
	const op = "Connected"
	if err := s.kit.Connected(ctx, c); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		done, err := s.connectOnce(cctx, c)
		if err != nil {
			return s.fail(ctx, op, s.what(fmt.Sprintf("client %q", c.ID), err))
		}
		if done {
			return nil
		}
		// Another write of the client came first: decide again.
		select {
		case <-cctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.fail(ctx, op, s.what(fmt.Sprintf("client %q", c.ID), fmt.Errorf("%d concurrent writes of the client came first: %w", attempt+1, cctx.Err())))
		case <-time.After(time.Duration(rand.IntN(1+min(attempt, 20))) * time.Millisecond):
		}
	}
}

// connectOnce tries to write c over the latest version; done is false
// when another write took the next version first.
func (s *Store) connectOnce(ctx context.Context, c *persist.Client) (done bool, err error) {
	live, err := s.versions(ctx, s.client, c.ID)
	if err != nil {
		return false, err
	}
	var cur clientVersion
	if len(live) > 0 {
		cur = live[0]
	}
	stored := len(live) > 0
	if !c.Online && stored && cur.c.Online && cur.c.Node != "" && cur.c.Node != c.Node {
		// The client moved to another node: a late disconnect changes
		// nothing, but the watches hear of it.
		return true, s.release(ctx, c)
	}
	n := *c
	if n.OnlineAt.IsZero() {
		n.OnlineAt = cur.c.OnlineAt
	}
	if n.OfflineAt.IsZero() {
		n.OfflineAt = cur.c.OfflineAt
	}
	written := now()
	if _, err := s.client.InsertOne(ctx, clientDoc(&n, cur.v+1, written)); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return false, nil
		}
		return false, err
	}
	// The older versions become tombstones (keeping their _id, so that
	// their version is never written again), and tombstones older than
	// tombLife go. A failure here leaves more than one live version, which
	// reads and the next write handle: the write is done.
	var models []mongo.WriteModel
	for _, old := range live {
		models = append(models, mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: "_id", Value: old.id}}).
			SetReplacement(bson.D{{Key: cTomb, Value: c.ID}, {Key: cWritten, Value: bson.NewDateTimeFromTime(written)}}))
	}
	models = append(models, mongo.NewDeleteManyModel().SetFilter(bson.D{
		{Key: cTomb, Value: c.ID},
		{Key: cWritten, Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(written.Add(-tombLife))}}},
	}))
	_, _ = s.bulk(ctx, s.client, models)
	return true, nil
}

// release writes the note of a disconnect that changed nothing (the
// client is online on another node): a tombstone with the node, which no
// look-up reads and which goes with the client's other tombstones, for
// the watches to tell (persist.Notice.Offline: this node has recorded the
// client's acks, and the node the client moved to waits for that).
func (s *Store) release(ctx context.Context, c *persist.Client) error {
	written := now()
	d := bson.D{
		{Key: "_id", Value: "r:" + persist.NewID() + ":" + c.ID},
		{Key: cTomb, Value: c.ID},
		{Key: cNode, Value: c.Node},
		{Key: cReleased, Value: true},
		{Key: cWritten, Value: bson.NewDateTimeFromTime(written)},
	}
	_, err := s.client.InsertOne(ctx, bucketFields(d, cWritten, written))
	return err
}

// Client returns the stored state of a client, or an error matching
// persist.ErrNotFound.
func (s *Store) Client(ctx context.Context, clientID string) (*persist.Client, error) {
	const op = "Client"
	if err := s.kit.Lookup(ctx, op, clientID); err != nil {
		return nil, err
	}
	live, err := s.versions(ctx, s.lookupClient, clientID)
	if err != nil {
		return nil, s.fail(ctx, op, s.what(fmt.Sprintf("client %q", clientID), err))
	}
	if len(live) == 0 {
		return nil, s.kit.Error(op, persist.ErrNotFound, fmt.Sprintf("client %q", clientID), nil)
	}
	c := live[0].c
	return &c, nil
}
