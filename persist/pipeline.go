package persist

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pipeline is a Store that stands between a Router and one store and
// decides how writes reach it: Durable, Publish with group commit and the
// other verbs passed through; or Async, every write (Connected,
// Subscribed, Publish, Retain, Acked) through one outbox, written in
// order, so that a client's state and subscriptions made while the
// database is down are not lost either. FetchOffline of an async pipeline
// first waits for the records queued before it. A Router puts every store that is not a
// Pipeline behind a durable one, so a Pipeline is needed only for other
// options; put it in a Router's rules (the Router reads lookups from the
// store behind it). It is safe for concurrent use. Close drains it; it
// does not close the store.
type Pipeline struct {
	store  Store
	limits Limits // the store's
	opts   PipelineOptions
	log    *slog.Logger

	base   context.Context // canceled when Close gives up draining
	cancel context.CancelFunc
	closed atomic.Bool
	active sync.RWMutex  // read-held by each write under way
	stop   chan struct{} // closed by Close
	hurry  chan struct{} // a FetchOffline waits: the worker writes without waiting for Interval
	done   chan struct{} // closed when the background goroutines end
	wg     sync.WaitGroup

	// durable group commit
	gmu   sync.Mutex
	gq    []*pend
	gbusy bool

	// async
	box     *outbox
	ahead   []decoded   // the worker's decoded records; ahead[0] has index aheadAt
	raw     []rawRecord // readAhead's, reused
	aheadAt uint64
	dropLog time.Time // last log of dropped records; box.mu

	written, failed, retried, dropped atomic.Uint64
	down                              atomic.Bool
	batch, latency                    *histogram
}

// NewPipeline returns a Pipeline writing to store. nil opts means a
// durable pipeline with the defaults. An async pipeline with an Outbox
// opens it (creating the directory) and replays what an earlier run left
// in it.
func NewPipeline(store Store, opts *PipelineOptions) (*Pipeline, error) {
	p := &Pipeline{store: store, limits: LimitsOf(store), stop: make(chan struct{}), done: make(chan struct{}), hurry: make(chan struct{}, 1),
		batch: newHistogram(batchBounds), latency: newHistogram(latencyBounds)}
	if opts != nil {
		p.opts = *opts
	}
	o := &p.opts
	bad := func(format string, args ...any) (*Pipeline, error) {
		return nil, Errorf(ErrInvalid, "persist: NewPipeline: "+format, args...)
	}
	switch {
	case store == nil:
		return bad("nil store")
	case o.Mode != Durable && o.Mode != Async:
		return bad("unknown mode %v", o.Mode)
	case o.Overflow != Block && o.Overflow != DropOldest:
		return bad("unknown overflow policy %v", o.Overflow)
	case o.MaxBatch < 0, o.MaxBatchBytes < 0, o.OutboxBytes < 0:
		return bad("negative MaxBatch, MaxBatchBytes or OutboxBytes")
	case o.Timeout < 0, o.MinBackoff < 0, o.MaxBackoff < 0, o.Drain < 0, o.Health < 0:
		return bad("negative duration")
	case o.Mode == Durable && o.Outbox != "":
		return bad("an Outbox needs Mode Async")
	}
	if o.Name == "" {
		o.Name = reflect.TypeOf(store).String()
	}
	o.Interval = max(cmpOr(o.Interval, DefaultInterval), 0)
	o.MaxBatch = cmpOr(o.MaxBatch, DefaultMaxBatch)
	o.MaxBatchBytes = cmpOr(o.MaxBatchBytes, DefaultMaxBatchBytes)
	o.Timeout = cmpOr(o.Timeout, DefaultWriteTimeout)
	o.MinBackoff = cmpOr(o.MinBackoff, DefaultMinBackoff)
	o.MaxBackoff = max(cmpOr(o.MaxBackoff, DefaultMaxBackoff), o.MinBackoff)
	o.OutboxBytes = cmpOr(o.OutboxBytes, DefaultOutboxBytes)
	o.Drain = cmpOr(o.Drain, o.Timeout)
	p.log = o.Logger
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("store", o.Name)
	p.base, p.cancel = context.WithCancel(context.Background())
	if o.Mode == Async {
		box, err := openOutbox(o.Outbox)
		if err != nil {
			p.cancel()
			return nil, Wrap("", "NewPipeline", ErrUnavailable, err, false)
		}
		p.box = box
		if n := box.next - box.first; n > 0 {
			p.log.Info("mqttpersist: outbox holds records from an earlier run; writing them", "records", n, "bytes", box.bytes)
		}
		p.wg.Go(p.run)
	}
	if pg, ok := store.(Pinger); ok && o.Health > 0 {
		p.wg.Go(func() { p.health(pg) })
	}
	go func() { p.wg.Wait(); close(p.done) }()
	return p, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// SharedGroups reports whether its store is a Router whose groups are one
// group across nodes (see Router.SharedGroups); the Pipeline passes a
// fetch of a shared filter to it as any other.
func (p *Pipeline) SharedGroups() bool {
	g, ok := p.store.(interface{ SharedGroups() bool })
	return ok && g.SharedGroups()
}

// ReleaseGroup passes a release of a group member's claims to its store
// when that is a Router (see Router.ReleaseGroup); otherwise it returns an
// error matching ErrUnsupported.
func (p *Pipeline) ReleaseGroup(ctx context.Context, group, member string, ids ...string) error {
	g, ok := p.store.(interface {
		ReleaseGroup(ctx context.Context, group, member string, ids ...string) error
	})
	if !ok {
		return unsupported("ReleaseGroup")
	}
	return g.ReleaseGroup(ctx, group, member, ids...)
}

// Store returns the store the Pipeline writes to.
func (p *Pipeline) Store() Store { return p.store }

// Limits returns the store's Limits (see Limiter).
func (p *Pipeline) Limits() Limits { return p.limits }

// check checks a call's input against the store's Limits, unless a Router
// above has; the returned context, marked Checked, lets the store skip its
// own checks.
func (p *Pipeline) check(ctx context.Context, op string, fn func(Limits) error) (context.Context, error) {
	if CheckedFor(ctx, p.limits) {
		return ctx, nil
	}
	if err := fn(p.limits); err != nil {
		return ctx, ownErr("pipeline "+p.opts.Name, op, err)
	}
	return withChecked(ctx, &p.limits), nil
}

// Name returns PipelineOptions.Name.
func (p *Pipeline) Name() string { return p.opts.Name }

// Mode returns the write mode.
func (p *Pipeline) Mode() WriteMode { return p.opts.Mode }

// Events returns the events of the store (see EventSupporter).
func (p *Pipeline) Events() Event {
	if es, ok := p.store.(EventSupporter); ok {
		return es.Events()
	}
	return AllEvents
}

// Stats returns the Pipeline's counters.
func (p *Pipeline) Stats() PipelineStats {
	s := PipelineStats{
		Name: p.opts.Name, Mode: p.opts.Mode,
		Written: p.written.Load(), Failed: p.failed.Load(), Retried: p.retried.Load(), Dropped: p.dropped.Load(),
		Up: !p.down.Load(), Batch: p.batch.snapshot(), Latency: p.latency.snapshot(),
	}
	if p.box != nil {
		p.box.mu.Lock()
		s.Queued, s.OutboxBytes = int(p.box.next-p.box.first), p.box.bytes
		p.box.mu.Unlock()
	}
	return s
}

// Close stops taking writes and drains: an async pipeline keeps writing
// what is queued for up to Drain, then closes its outbox (what is left in an
// on-disk outbox is written after the next start; what is left in a memory
// queue is lost, and Close says how much). The store is not closed.
func (p *Pipeline) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	close(p.stop)
	t := time.AfterFunc(p.opts.Drain, p.cancel)
	defer t.Stop()
	p.active.Lock() // the writes under way end (durable ones within Timeout)
	p.active.Unlock()
	<-p.done
	p.cancel()
	if p.box == nil {
		return nil
	}
	p.box.mu.Lock()
	left, bytes := p.box.next-p.box.first, p.box.bytes
	p.box.mu.Unlock()
	err := p.box.close()
	if left > 0 {
		if p.opts.Outbox == "" {
			return errors.Join(err, Errorf(ErrUnavailable, "persist: pipeline %s closed with %d records (%d bytes) not written to the store and no outbox directory: they are lost", p.opts.Name, left, bytes))
		}
		p.log.Warn("mqttpersist: closed with records left in the outbox; they are written after the next start", "records", left, "bytes", bytes, "outbox", p.opts.Outbox)
	}
	return err
}

// enter starts a write, or returns ErrClosed; the caller runs
// p.active.RUnlock when the write is done. Close waits for the writes
// under way.
func (p *Pipeline) enter(op string) error {
	p.active.RLock()
	if p.closed.Load() {
		p.active.RUnlock()
		return p.errClosed(op)
	}
	return nil
}

func (p *Pipeline) errClosed(op string) error {
	return &Error{Store: "persist: pipeline " + p.opts.Name, Op: op, Kind: ErrClosed}
}

// Connected records c: durable, passed to the store; async, once it is in
// the outbox.
func (p *Pipeline) Connected(ctx context.Context, c *Client) error {
	if p.closed.Load() {
		return p.errClosed("Connected")
	}
	ctx, err := p.check(ctx, "Connected", func(l Limits) error { return l.CheckClient(c) })
	if err != nil {
		return err
	}
	if p.box != nil {
		if err := p.enter("Connected"); err != nil {
			return err
		}
		defer p.active.RUnlock()
		cc := *c
		return p.enqueue(ctx, []record{{Op: opConnected, Conn: &cc}})
	}
	return p.store.Connected(ctx, c)
}

// Subscribed records the subscriptions: durable, passed to the store;
// async, once they are in the outbox.
func (p *Pipeline) Subscribed(ctx context.Context, clientID string, subs []Subscription, removed []string) error {
	if p.closed.Load() {
		return p.errClosed("Subscribed")
	}
	ctx, err := p.check(ctx, "Subscribed", func(l Limits) error { return l.CheckSubscribed(clientID, subs, removed) })
	if err != nil || len(subs)+len(removed) == 0 {
		return err
	}
	if p.box != nil {
		if err := p.enter("Subscribed"); err != nil {
			return err
		}
		defer p.active.RUnlock()
		// A new subscription starts now, not when the worker writes it.
		stamped := slices.Clone(subs)
		now := NewID()
		for i := range stamped {
			if stamped[i].Start == "" {
				stamped[i].Start = now
			}
		}
		return p.enqueue(ctx, []record{{Op: opSubscribed, Client: clientID, Subs: stamped, Removed: removed}})
	}
	return p.store.Subscribed(ctx, clientID, subs, removed)
}

// Ping pings the store, or returns an error matching ErrUnsupported when it
// is not a Pinger.
func (p *Pipeline) Ping(ctx context.Context) error {
	if pg, ok := p.store.(Pinger); ok {
		return pg.Ping(ctx)
	}
	return unsupported("Ping")
}

// FetchOffline asks the store; an async pipeline first waits until the
// records queued before the call have left the outbox (written, failed or
// dropped), so a client sees the messages published before it asked.
func (p *Pipeline) FetchOffline(ctx context.Context, clientID, filter string, opt Fetch) ([]*Message, error) {
	if p.closed.Load() {
		return nil, p.errClosed("FetchOffline")
	}
	ctx, err := p.check(ctx, "FetchOffline", func(l Limits) error { return l.CheckFetch(clientID, filter, opt) })
	if err != nil {
		return nil, err
	}
	if p.box != nil {
		if err := p.waitFor(ctx); err != nil {
			return nil, err
		}
	}
	return p.store.FetchOffline(ctx, clientID, filter, opt)
}

// waitFor waits until the records queued now have left the outbox.
func (p *Pipeline) waitFor(ctx context.Context) error {
	b := p.box
	b.mu.Lock()
	upTo := b.next
	if b.first < upTo {
		select {
		case p.hurry <- struct{}{}:
		default:
		}
	}
	for b.first < upTo && !b.closed {
		ch := b.wait()
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	b.mu.Unlock()
	return nil
}

// Publish stores msgs: durable, it returns once the store has them
// (group-committed with concurrent calls); async, once they are in the
// outbox. Like Router.Publish it gives messages with no ID or Time one.
// A batch with a message that fails Limits.CheckPublish (for the store's
// Limits) is rejected whole with an error matching ErrInvalid, and nothing
// is stored then.
func (p *Pipeline) Publish(ctx context.Context, msgs ...*Message) error {
	if err := p.enter("Publish"); err != nil {
		return err
	}
	defer p.active.RUnlock()
	fillAll(msgs)
	if _, err := p.check(ctx, "Publish", func(l Limits) error { return l.CheckPublish(msgs) }); err != nil || len(msgs) == 0 {
		return err
	}
	if p.box != nil {
		var one [1]record
		recs := one[:0]
		if len(msgs) > len(one) {
			recs = make([]record, 0, len(msgs))
		}
		recs = recs[:len(msgs)]
		for i, m := range msgs {
			recs[i] = record{Op: opPublish, Msg: m, Rule: m.rule}
		}
		return p.enqueue(ctx, recs)
	}
	return p.groupCommit(ctx, msgs)
}

// Retain sets or deletes the retained message of m.Topic (see Store).
func (p *Pipeline) Retain(ctx context.Context, m *Message) error {
	if err := p.enter("Retain"); err != nil {
		return err
	}
	defer p.active.RUnlock()
	fillAll([]*Message{m})
	ctx, err := p.check(ctx, "Retain", func(l Limits) error { return l.CheckRetain(m) })
	if err != nil {
		return err
	}
	if p.box != nil {
		return p.enqueue(ctx, []record{{Op: opRetain, Msg: m, Rule: m.rule}})
	}
	return p.direct(ctx, 1, func(ctx context.Context) error { return p.store.Retain(ctx, m) })
}

// Acked records a client's acks (see Store).
func (p *Pipeline) Acked(ctx context.Context, clientID string, acks ...Ack) error {
	if err := p.enter("Acked"); err != nil {
		return err
	}
	defer p.active.RUnlock()
	ctx, err := p.check(ctx, "Acked", func(l Limits) error { return l.CheckAcked(clientID, acks) })
	if err != nil || len(acks) == 0 {
		return err
	}
	if p.box != nil {
		return p.enqueue(ctx, []record{{Op: opAcked, Client: clientID, Acks: acks}})
	}
	return p.direct(ctx, len(acks), func(ctx context.Context) error { return p.store.Acked(ctx, clientID, acks...) })
}

// direct makes one durable store call of n items and counts it.
func (p *Pipeline) direct(ctx context.Context, n int, call func(context.Context) error) error {
	start := time.Now()
	err := call(ctx)
	p.observe(n, start, err)
	if err != nil {
		p.failed.Add(uint64(n))
		return err
	}
	p.written.Add(uint64(n))
	return nil
}

// observe records a store call of n items that started at start.
func (p *Pipeline) observe(n int, start time.Time, err error) {
	p.batch.observe(float64(n))
	p.latency.observe(time.Since(start).Seconds())
	if err == nil {
		p.setUp()
	}
}
