package mongostore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// storeName names this store in errors.
const storeName = "mongostore"

// limits are what the collections keep (see MaxTopicLen and the others).
var limits = persist.Limits{
	ClientID: MaxClientIDLen, Topic: MaxTopicLen, Text: MaxStringLen, ID: MaxIDLen, Payload: MaxPayloadLen,
}

// Store is a persist.Store (with ClientLookup, SubscriptionLookup,
// RetainLookup, Pinger, Closer, Limiter, Migrator, Watcher and Claimer) on MongoDB
// collections shaped like the seeds', safe for concurrent use. It uses
// single-document writes, unique indexes and no transactions (see the
// package doc).
type Store struct {
	kit *storekit.Kit // the contract's shared half: gate, checks, errors
	db  *mongo.Database
	opt Options
	n   names
	own bool // Open made the client: Close disconnects it

	client, sub, msg, retain, acked, ackedMsg, claim, topics, writer, groupClaim *mongo.Collection
	// msgW and retainW write messages and retained messages with the
	// write concern of Options.Unsafe, once unsafeOnce found the server
	// takes unacknowledged writes (see writers).
	msgW, retainW *mongo.Collection
	unsafeOnce    sync.Once
	// lookup reads with Options.LookupReadPreference.
	lookupClient, lookupSub, lookupRetain *mongo.Collection

	stampMu sync.Mutex
	stamp   int64 // the last Publish stamp, in Unix milliseconds

	// The store's writer document (see writing).
	writerID string
	wr       writerState

	featMu sync.Mutex
	feat   *features // what Migrate found the server has

	infoMu sync.Mutex
	info   *serverInfo // what the server is, found on first need

	watches storekit.Watches // open watches: Close closes them

	// The topic registry's pending writes (FerretDB, see register).
	regMu      sync.Mutex
	reg        map[string]registration
	regTokens  []uint64 // the writes of Publish that end once reg is written
	regRunning bool
	regDone    chan struct{}
}

var (
	_ persist.Store              = (*Store)(nil)
	_ persist.ClientLookup       = (*Store)(nil)
	_ persist.SubscriptionLookup = (*Store)(nil)
	_ persist.RetainLookup       = (*Store)(nil)
	_ persist.Pinger             = (*Store)(nil)
	_ persist.Closer             = (*Store)(nil)
	_ persist.Limiter            = (*Store)(nil)
	_ persist.Migrator           = (*Store)(nil)
	_ persist.Watcher            = (*Store)(nil)
	_ persist.Claimer            = (*Store)(nil)
)

// New returns a store on db, a database of a client the caller made with
// mongo.Connect and keeps owning (Close leaves it connected); it does not
// touch the server, and nil opts means the defaults. Call Migrate once
// to create the collections' indexes.
func New(db *mongo.Database, opts *Options) (*Store, error) {
	if db == nil {
		return nil, invalid("New", "db is nil")
	}
	opt, n, err := opts.resolve()
	if err != nil {
		return nil, invalid("New", "%v", err)
	}
	s := &Store{
		kit: storekit.New(storeName, limits, classify),
		db:  db,
		opt: opt,
		n:   n,
	}
	primary := options.Collection().SetReadPreference(readpref.Primary())
	s.client = db.Collection(n.client, primary)
	s.sub = db.Collection(n.sub, primary)
	s.msg = db.Collection(n.msg, primary)
	s.retain = db.Collection(n.retain, primary)
	s.acked = db.Collection(n.acked, primary)
	s.ackedMsg = db.Collection(n.ackedMsg, primary)
	s.claim = db.Collection(n.claim, primary)
	s.topics = db.Collection(n.topic, primary)
	s.writer = db.Collection(n.writer, primary)
	s.groupClaim = db.Collection(n.groupClaim, primary)
	s.writerID = persist.NewID()
	s.msgW, s.retainW = s.msg, s.retain
	s.lookupClient, s.lookupSub, s.lookupRetain = s.client, s.sub, s.retain
	if rp := opt.LookupReadPreference; rp != nil {
		o := options.Collection().SetReadPreference(rp)
		s.lookupClient = db.Collection(n.client, o)
		s.lookupSub = db.Collection(n.sub, o)
		s.lookupRetain = db.Collection(n.retain, o)
	}
	return s, nil
}

// writers returns the collections that messages and retained messages
// are written to: unacknowledged with Options.Unsafe, unless the server
// is FerretDB, which answers unacknowledged writes and so puts the
// driver's connection out of step; the first call asks the server (and
// until one could, writes stay acknowledged).
func (s *Store) writers(ctx context.Context) (msg, retain *mongo.Collection) {
	if !s.opt.Unsafe {
		return s.msgW, s.retainW
	}
	s.unsafeOnce.Do(func() {
		info, err := s.server(ctx)
		if err != nil || info.ferret {
			return
		}
		w0 := options.Collection().SetWriteConcern(writeconcern.Unacknowledged()).SetReadPreference(readpref.Primary())
		s.msgW = s.db.Collection(s.n.msg, w0)
		s.retainW = s.db.Collection(s.n.retain, w0)
	})
	return s.msgW, s.retainW
}

// unacked reports whether messages are written unacknowledged (see
// writers).
func (s *Store) unacked() bool { return s.msgW != s.msg }

// Database returns the database the store uses.
func (s *Store) Database() *mongo.Database { return s.db }

// Collections returns the names of the collections in use: client,
// subscription, message, retain, ack, acked-message, claim, topic, writer
// and group claim.
func (s *Store) Collections() []string {
	return []string{s.n.client, s.n.sub, s.n.msg, s.n.retain, s.n.acked, s.n.ackedMsg, s.n.claim, s.n.topic, s.n.writer, s.n.groupClaim}
}

// Limits returns the sizes the store keeps (see MaxTopicLen and the
// others).
func (s *Store) Limits() persist.Limits { return s.kit.Limits() }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.kit.Ping(ctx); err != nil {
		return err
	}
	err := s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
	return s.fail(ctx, "Ping", err)
}

// Close makes every later call fail with persist.ErrClosed, ends the
// store's watches and disconnects the client if Open made it; closing
// again returns nil.
func (s *Store) Close() error {
	if !s.kit.Close() {
		return nil
	}
	s.watches.CloseAll()
	s.regMu.Lock()
	running, done := s.regRunning, s.regDone
	s.regMu.Unlock()
	if running {
		<-done // the last registrations written (or given up)
	}
	s.retireWriter()
	if s.own {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.db.Client().Disconnect(ctx); err != nil {
			return s.kit.Error("Close", nil, "", err)
		}
	}
	return nil
}

// now returns the time of a read or write, to the millisecond (what a
// BSON date keeps).
func now() time.Time { return time.UnixMilli(time.Now().UnixMilli()) }

// nextStamp returns the stamp of a Publish: the time in milliseconds,
// never less than the stamp before it.
func (s *Store) nextStamp() time.Time {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	ms := time.Now().UnixMilli()
	if ms < s.stamp {
		ms = s.stamp
	}
	s.stamp = ms
	return time.UnixMilli(ms)
}

// invalid returns an error of op matching persist.ErrInvalid, caused by
// the formatted text (for New and Open, which have no kit entry).
func invalid(op, format string, args ...any) error {
	return &persist.Error{Store: storeName, Op: op, Kind: persist.ErrInvalid, Err: fmt.Errorf(format, args...)}
}
