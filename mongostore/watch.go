package mongostore

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

// lookback is how far before the newest write it has seen a polling watch
// looks again, once a second, for writes that became readable after
// newer ones (a slow Publish, a node whose clock is behind).
const lookback = 2 * time.Second

// Watch starts a watch (see persist.Watcher). On a replica set or a
// sharded cluster it opens a change stream on the database, for the
// inserts into mqtt_msg and of client versions and notes into mqtt_client,
// and the server sends each node every insert (the watch matches their
// topics with its filters). On a server without change streams (a
// standalone MongoDB, FerretDB) the watch polls every
// Options.PollInterval with two indexed range queries: the messages
// stamped since the newest it saw (on the stored index) and the client
// versions written since (on the written index), and once a second from
// two seconds before those. A broken stream or poll is tried again;
// after it works again fn hears an empty Notice.
func (s *Store) Watch(ctx context.Context, fn func(persist.Notice)) (persist.Watch, error) {
	const op = "Watch"
	if err := s.kit.Enter(ctx, op); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, s.kit.Error(op, persist.ErrInvalid, "", errors.New("fn is nil"))
	}
	w := &watch{s: s, fn: fn, done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	start := now()
	cs, err := s.stream(ctx)
	if err != nil {
		w.cancel()
		return nil, s.fail(ctx, op, err)
	}
	w.stream = cs != nil
	if !s.watches.Add(s.kit, w) {
		w.cancel()
		if cs != nil {
			_ = cs.Close(context.Background())
		}
		return nil, s.kit.Enter(ctx, op)
	}
	stop := context.AfterFunc(ctx, func() { _ = w.Close() })
	go func() {
		defer stop()
		defer close(w.done)
		if cs != nil {
			w.streamLoop(cs)
		} else {
			w.pollLoop(start)
		}
	}()
	return w, nil
}

// Polling reports whether the watch polls (the server has no change
// streams) rather than reading a change stream.
func Polling(w persist.Watch) bool {
	x, ok := w.(*watch)
	return ok && !x.stream
}

// stream opens the change stream of a watch, or returns nil when the
// server has none: change streams need a replica set or a sharded
// cluster (hello names a set, or says isdbgrid), and a server that is one
// may still refuse them (DocumentDB without them enabled, Cosmos DB).
func (s *Store) stream(ctx context.Context) (*mongo.ChangeStream, error) {
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return nil, err
	}
	if hello.SetName == "" && hello.Msg != "isdbgrid" {
		return nil, nil
	}
	cs, err := s.openStream(ctx, nil)
	if err == nil {
		return cs, nil
	}
	if kind, _ := classify(err); kind != nil || ctx.Err() != nil {
		return nil, err // unreachable, not refused
	}
	return nil, nil
}

// openStream opens the change stream of the store's watches, after the
// resume token when one is given.
func (s *Store) openStream(ctx context.Context, resume bson.Raw) (*mongo.ChangeStream, error) {
	pipeline := mongo.Pipeline{
		{{Key: "$match", Value: bson.D{
			{Key: "operationType", Value: "insert"},
			{Key: "ns.coll", Value: bson.D{{Key: "$in", Value: bson.A{s.n.msg, s.n.client}}}},
		}}},
		{{Key: "$project", Value: bson.D{
			{Key: "ns.coll", Value: 1},
			{Key: "fullDocument." + fTopic, Value: 1},
			{Key: "fullDocument." + fNode, Value: 1},
			{Key: "fullDocument." + cClientID, Value: 1},
			{Key: "fullDocument." + cState, Value: 1},
			{Key: "fullDocument." + cOnlineAtMs, Value: 1},
			{Key: "fullDocument." + cTomb, Value: 1},
			{Key: "fullDocument." + cReleased, Value: 1},
		}}},
	}
	o := options.ChangeStream()
	if resume != nil {
		o.SetResumeAfter(resume)
	}
	return s.db.Watch(ctx, pipeline, o)
}

// watch is a persist.Watch: a change stream or a polling loop.
type watch struct {
	s      *Store
	fn     func(persist.Notice)
	stream bool
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop ends

	mu      sync.Mutex
	closed  bool
	filters storekit.Filters
}

// check returns the error that stops op with filters (see
// storekit.Kit.Watch), or ErrClosed after Close.
func (w *watch) check(ctx context.Context, op string, filters []string) error {
	if err := w.s.kit.Watch(ctx, op, filters); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.s.kit.Error(op, persist.ErrClosed, "", errors.New("watch is closed"))
	}
	return nil
}

// Add starts watching filters (a shared filter as its inner filter). A
// Publish that returns after Add returned is heard: the next poll, or
// the change stream opened before, sees its messages.
func (w *watch) Add(ctx context.Context, filters ...string) error {
	if err := w.check(ctx, "Watch.Add", filters); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.filters.Add(filters...)
	return nil
}

// Remove stops watching filters, one count each; a filter that is not
// watched (an invalid one is never) is left alone.
func (w *watch) Remove(ctx context.Context, filters ...string) error {
	if err := w.check(ctx, "Watch.Remove", nil); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.filters.Remove(filters...)
	return nil
}

// Close ends the watch; closing again returns nil.
func (w *watch) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
	w.s.watches.Drop(w)
	return nil
}

// watched reports whether a watched filter matches topic name t.
func (w *watch) watched(t string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.filters.Matches(t)
}

// sleep waits d or until the watch ends, and reports whether it did not
// end.
func (w *watch) sleep(d time.Duration) bool {
	select {
	case <-w.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// streamLoop reads the change stream until the watch ends, opening it
// again (after the last event read) when it breaks.
func (w *watch) streamLoop(cs *mongo.ChangeStream) {
	backoff := 50 * time.Millisecond
	var token bson.Raw
	for {
		for cs.Next(w.ctx) {
			token = cs.ResumeToken()
			w.event(cs.Current)
		}
		_ = cs.Close(context.Background())
		for {
			if !w.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
			var err error
			if cs, err = w.s.openStream(w.ctx, token); err != nil && token != nil {
				// The token may be gone from the oplog: start anew.
				token = nil
				cs, err = w.s.openStream(w.ctx, nil)
			}
			if err == nil {
				break
			}
		}
		backoff = 50 * time.Millisecond
		w.fn(persist.Notice{})
	}
}

// event passes a change stream event to fn.
func (w *watch) event(ev bson.Raw) {
	doc, ok := ev.Lookup("fullDocument").DocumentOK()
	if !ok {
		return
	}
	if coll, _ := ev.Lookup("ns", "coll").StringValueOK(); coll == w.s.n.client {
		w.clientNotice(doc)
		return
	}
	if t := textOf(doc.Lookup(fTopic)); t != "" && w.watched(t) {
		w.fn(persist.Notice{Topic: t, Node: textOf(doc.Lookup(fNode))})
	}
}

// clientNotice passes to fn the notice of a client document: a version
// (online, or a disconnect: Offline), or the note of a disconnect that
// changed nothing (Offline, see Store.release); a tombstone is none.
func (w *watch) clientNotice(doc bson.Raw) {
	n := persist.Notice{Node: textOf(doc.Lookup(cNode))}
	if id := textOf(doc.Lookup(cClientID)); id != "" {
		state, _ := doc.Lookup(cState).AsInt64OK()
		n.Client, n.Offline = id, state != 1
		if ms, ok := doc.Lookup(cOnlineAtMs).AsInt64OK(); ok && !n.Offline {
			n.At = time.UnixMilli(ms)
		}
	} else if rel, _ := doc.Lookup(cReleased).BooleanOK(); rel {
		n.Client, n.Offline = textOf(doc.Lookup(cTomb)), true
	}
	if n.Client != "" {
		w.fn(n)
	}
}

// pollLoop polls until the watch ends (see Store.Watch).
func (w *watch) pollLoop(start time.Time) {
	p := &poller{w: w, msgSince: start, cliSince: start, seen: map[string]time.Time{}}
	tick := time.NewTicker(w.s.opt.PollInterval)
	defer tick.Stop()
	broken := false
	lastSlow := time.Now()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-tick.C:
		}
		slow := time.Since(lastSlow) >= time.Second
		if slow {
			lastSlow = time.Now()
		}
		if err := p.poll(slow); err != nil {
			if w.ctx.Err() != nil {
				return
			}
			broken = true
			continue
		}
		if broken {
			broken = false
			w.fn(persist.Notice{})
		}
	}
}

// poller is a polling watch's state: the newest stamps seen and what was
// told already.
type poller struct {
	w                  *watch
	msgSince, cliSince time.Time
	seen               map[string]time.Time // _id of a message or client version → its stamp
}

// poll reads the messages stamped and the client versions and notes
// written since the newest seen (or lookback before them when slow) and tells fn
// of those not told yet.
func (p *poller) poll(slow bool) error {
	s := p.w.s
	ctx, cancel := context.WithTimeout(p.w.ctx, 10*time.Second)
	defer cancel()
	from, cfrom := p.msgSince, p.cliSince
	if slow {
		from, cfrom = from.Add(-lookback), cfrom.Add(-lookback)
	}
	info, err := s.server(ctx)
	if err != nil {
		return err
	}
	// What a later poll reads again: messages (or registry entries) are
	// stamped before they are written, so one stamped before another may
	// become readable after it; the settled horizon (the writer documents,
	// see Store.horizon) says from where on one may still come.
	settled, err := s.horizon(ctx, now())
	if err != nil {
		return err
	}
	// The messages' topics: on FerretDB from the topic registry (a read of
	// mqtt_msg would pass over the whole collection), else from mqtt_msg
	// by its stored index.
	coll, registry := s.msg, false
	if info.ferret {
		coll, registry = s.topics, true
	}
	mf, err := s.since(ctx, nil, fStored, from, pollBuckets)
	if err != nil {
		return err
	}
	cf, err := s.since(ctx, nil, cWritten, cfrom, pollBuckets)
	if err != nil {
		return err
	}
	var msgs, clients []bson.Raw
	err = parallel(
		func() (err error) {
			msgs, err = findAll(ctx, coll, mf, options.Find().SetProjection(bson.D{{Key: fTopic, Value: 1}, {Key: fNode, Value: 1}, {Key: fStored, Value: 1}}))
			return err
		},
		func() (err error) {
			clients, err = findAll(ctx, s.client, cf, options.Find().SetProjection(bson.D{{Key: cClientID, Value: 1}, {Key: cNode, Value: 1}, {Key: cOnlineAtMs, Value: 1}, {Key: cWritten, Value: 1}, {Key: cState, Value: 1}, {Key: cTomb, Value: 1}, {Key: cReleased, Value: 1}}))
			return err
		},
	)
	if err != nil {
		return err
	}
	// One notice per topic, naming a node when every message it tells of
	// is that node's.
	var topics []string
	nodeOf := map[string]string{}
	for _, r := range msgs {
		dt, _ := r.Lookup(fStored).DateTimeOK()
		at := time.UnixMilli(dt)
		t, node := textOf(r.Lookup(fTopic)), textOf(r.Lookup(fNode))
		id := "m" + textOf(r.Lookup("_id"))
		if registry {
			// A registry document: a topic's last stamp from one node.
			id = "t" + strconv.FormatInt(dt, 10) + ":" + textOf(r.Lookup(fID))
		}
		if _, ok := p.seen[id]; ok || at.Before(from) {
			continue
		}
		p.seen[id] = at
		if at.After(p.msgSince) {
			p.msgSince = at
		}
		if t == "" || !p.w.watched(t) {
			continue
		}
		if prev, ok := nodeOf[t]; !ok {
			topics = append(topics, t)
			nodeOf[t] = node
		} else if prev != node {
			nodeOf[t] = ""
		}
	}
	for _, t := range topics {
		p.w.fn(persist.Notice{Topic: t, Node: nodeOf[t]})
	}
	if p.msgSince.After(settled) {
		p.msgSince = settled
	}
	for _, r := range clients {
		id := "c" + textOf(r.Lookup("_id"))
		dt, _ := r.Lookup(cWritten).DateTimeOK()
		at := time.UnixMilli(dt)
		if _, ok := p.seen[id]; ok || at.Before(cfrom) {
			continue
		}
		p.seen[id] = at
		if at.After(p.cliSince) {
			p.cliSince = at
		}
		p.w.clientNotice(r)
	}
	// Forget what no poll reads again.
	oldest := p.msgSince
	if p.cliSince.Before(oldest) {
		oldest = p.cliSince
	}
	oldest = oldest.Add(-2 * lookback)
	for id, at := range p.seen {
		if at.Before(oldest) {
			delete(p.seen, id)
		}
	}
	return nil
}
