package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// WriteMode is how a Pipeline gets writes to its store.
type WriteMode uint8

const (
	// Durable writes return once the store has them. Concurrent Publish
	// calls are group-committed: one store call carries everything queued
	// while the previous call ran, and releases every waiting caller.
	Durable WriteMode = iota
	// Async writes return once they are in the outbox; a worker writes
	// them to the store in order, in batches, retrying while it is down.
	Async
)

// String returns "durable" or "async".
func (m WriteMode) String() string {
	switch m {
	case Durable:
		return "durable"
	case Async:
		return "async"
	}
	return fmt.Sprintf("writemode(%d)", uint8(m))
}

// ParseWriteMode parses "durable" or "async".
func ParseWriteMode(s string) (WriteMode, error) {
	switch s {
	case "durable", "sync":
		return Durable, nil
	case "async":
		return Async, nil
	}
	return 0, Errorf(ErrInvalid, "persist: unknown write mode %q (want durable or async)", s)
}

// Overflow is what an async Pipeline does when its outbox is full.
type Overflow uint8

const (
	// Block makes writers wait (until their context ends) for room.
	Block Overflow = iota
	// DropOldest drops the oldest records not being written, counted in
	// PipelineStats.Dropped and logged.
	DropOldest
)

// String returns "block" or "drop-oldest".
func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("overflow(%d)", uint8(o))
}

// ParseOverflow parses "block" or "drop-oldest".
func ParseOverflow(s string) (Overflow, error) {
	switch s {
	case "block":
		return Block, nil
	case "drop-oldest", "drop_oldest", "drop":
		return DropOldest, nil
	}
	return 0, Errorf(ErrInvalid, "persist: unknown overflow policy %q (want block or drop-oldest)", s)
}

// Defaults of PipelineOptions.
const (
	DefaultMaxBatch      = 1000
	DefaultMaxBatchBytes = 8 << 20
	DefaultWriteTimeout  = 5 * time.Second
	DefaultMinBackoff    = 50 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	DefaultOutboxBytes   = 256 << 20
)

// PipelineOptions configure a Pipeline; the zero value gives a durable
// pipeline with the defaults.
type PipelineOptions struct {
	// Name names the store in logs and metrics; "" means its Go type.
	Name string
	// Mode is Durable (the default) or Async.
	Mode WriteMode
	// MaxBatch is the most items (messages, acks) of one store call;
	// 0 means DefaultMaxBatch.
	MaxBatch int
	// MaxBatchBytes bounds the encoded size of an async batch; 0 means
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// Interval is how long the async worker lets a batch that is not full
	// fill up before writing it; 0 writes at once what is queued (records
	// queued while a write runs make the next batch anyway).
	Interval time.Duration
	// Timeout bounds each store call; 0 means DefaultWriteTimeout. A
	// durable Publish retries retryable errors within it.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries (doubled
	// each time, with jitter); 0 means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// Outbox is the directory of the async outbox (a write-ahead log); ""
	// keeps the queue in memory, where a restart loses it.
	Outbox string
	// OutboxBytes bounds the records waiting in the outbox; 0 means
	// DefaultOutboxBytes.
	OutboxBytes int64
	// Overflow is what happens when the outbox is full.
	Overflow Overflow
	// Drain bounds how long Close keeps writing what is queued; 0 means
	// Timeout. What is left stays in an on-disk outbox for the next start.
	Drain time.Duration
	// DeadLetter, when set, gets the messages (published and retained) the
	// store refused with a permanent error.
	DeadLetter Store
	// Health, when positive, pings the store (if it is a Pinger) that often
	// so that an idle pipeline also notices, and logs, a store going down
	// and coming back.
	Health time.Duration
	// Logger receives store failures and outages; nil means slog.Default().
	Logger *slog.Logger
}

// PipelineStats are a Pipeline's counters since NewPipeline, in items
// (messages, acks, retained messages).
type PipelineStats struct {
	// Name is PipelineOptions.Name.
	Name string
	// Mode is the write mode.
	Mode WriteMode
	// Written counts items the store took.
	Written uint64
	// Failed counts items the store refused with a permanent error.
	Failed uint64
	// Retried counts items of store calls retried after a retryable error.
	Retried uint64
	// Dropped counts items dropped from a full outbox (DropOldest).
	Dropped uint64
	// Queued is how many records wait in the outbox.
	Queued int
	// OutboxBytes is their size.
	OutboxBytes int64
	// Up is false while the store is failing with retryable errors.
	Up bool
	// Batch is the number of items per store call.
	Batch Histogram
	// Latency is the duration of store calls, in seconds.
	Latency Histogram
}

// Pipeline is a Store that stands between a Router and one store and
// decides how writes (Publish, Retain, Acked) reach it: Durable, with
// group commit, or Async, through an outbox. Connected and Subscribed are
// passed through; FetchOffline of an async pipeline first waits for the
// records queued before it. A Router puts every store that is not a
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
	done   chan struct{} // closed when the background goroutines end
	wg     sync.WaitGroup

	// durable group commit
	gmu   sync.Mutex
	gq    []*pend
	gbusy bool

	// async
	box     *outbox
	ahead   []decoded // the worker's decoded records; ahead[0] has index aheadAt
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
	p := &Pipeline{store: store, limits: LimitsOf(store), stop: make(chan struct{}), done: make(chan struct{}),
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
	case o.Interval < 0, o.Timeout < 0, o.MinBackoff < 0, o.MaxBackoff < 0, o.Drain < 0, o.Health < 0:
		return bad("negative duration")
	case o.Mode == Durable && o.Outbox != "":
		return bad("an Outbox needs Mode Async")
	}
	if o.Name == "" {
		o.Name = reflect.TypeOf(store).String()
	}
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
	return withChecked(ctx, p.limits), nil
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

// Connected passes c to the store.
func (p *Pipeline) Connected(ctx context.Context, c *Client) error {
	if p.closed.Load() {
		return p.errClosed("Connected")
	}
	ctx, err := p.check(ctx, "Connected", func(l Limits) error { return l.CheckClient(c) })
	if err != nil {
		return err
	}
	return p.store.Connected(ctx, c)
}

// Subscribed passes the subscriptions to the store.
func (p *Pipeline) Subscribed(ctx context.Context, clientID string, subs []Subscription, removed []string) error {
	if p.closed.Load() {
		return p.errClosed("Subscribed")
	}
	ctx, err := p.check(ctx, "Subscribed", func(l Limits) error { return l.CheckSubscribed(clientID, subs, removed) })
	if err != nil {
		return err
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
	for b.first < upTo && !b.closed {
		ch := b.changed
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
		recs := make([]record, len(msgs))
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

// pend is a durable Publish waiting for its group commit.
type pend struct {
	msgs []*Message
	err  error
	lead bool // the caller commits the queue instead of waiting
	done chan struct{}
}

// groupCommit stores msgs together with those of concurrent callers: one
// caller stores everything queued in one store call and releases the
// others, then hands the queue that built up meanwhile to the first of its
// callers. No timer: a lone caller is written at once, and a batch is as
// big as the load made it while the previous call ran.
func (p *Pipeline) groupCommit(ctx context.Context, msgs []*Message) error {
	me := &pend{msgs: msgs, done: make(chan struct{})}
	p.gmu.Lock()
	p.gq = append(p.gq, me)
	if p.gbusy {
		p.gmu.Unlock()
		select {
		case <-me.done:
		case <-ctx.Done():
			// The commit goes on; this caller stops waiting for it.
			go func() { <-me.done; p.lead(me) }()
			return ctx.Err()
		}
		if !me.lead {
			return me.err
		}
	} else {
		p.gbusy = true
		me.lead = true
		p.gmu.Unlock()
	}
	p.commit(me)
	return me.err
}

// lead commits the queue when a caller that stopped waiting was made leader.
func (p *Pipeline) lead(me *pend) {
	if me.lead {
		p.commit(me)
	}
}

// commit is run by the leader: it takes up to MaxBatch messages from the
// queue, stores them, hands the queue on and releases the callers.
func (p *Pipeline) commit(me *pend) {
	p.gmu.Lock()
	var batch []*pend
	n := 0
	for len(p.gq) > 0 && (n == 0 || n+len(p.gq[0].msgs) <= p.opts.MaxBatch) {
		n += len(p.gq[0].msgs)
		batch = append(batch, p.gq[0])
		p.gq = p.gq[1:]
	}
	p.gmu.Unlock()
	msgs := make([]*Message, 0, n)
	for _, q := range batch {
		msgs = append(msgs, q.msgs...)
	}
	err := p.retry(msgs)
	var errs []error // per caller, when the batch was rejected
	if err != nil && len(batch) > 1 && errors.Is(err, ErrInvalid) {
		// One message the store cannot take rejects the batch: store the
		// others caller by caller.
		errs = make([]error, len(batch))
		for i, q := range batch {
			errs[i] = p.retry(q.msgs)
		}
	}
	p.gmu.Lock()
	if len(p.gq) > 0 {
		next := p.gq[0]
		next.lead = true
		close(next.done)
	} else {
		p.gbusy = false
	}
	p.gmu.Unlock()
	for i, q := range batch {
		q.err = err
		if errs != nil {
			q.err = errs[i]
		}
		if q != me {
			close(q.done)
		}
	}
}

// retry publishes msgs, retrying retryable errors within Timeout.
func (p *Pipeline) retry(msgs []*Message) error {
	ctx, cancel := context.WithTimeout(p.base, p.opts.Timeout)
	defer cancel()
	ctx = withChecked(ctx, p.limits) // checked by Publish
	backoff := p.opts.MinBackoff
	for {
		start := time.Now()
		err := p.store.Publish(ctx, msgs...)
		p.observe(len(msgs), start, err)
		if err == nil {
			p.written.Add(uint64(len(msgs)))
			return nil
		}
		if IsRetryable(err) {
			p.setDown(err)
		}
		if !IsRetryable(err) || ctx.Err() != nil || !sleep(ctx, jitter(backoff)) {
			p.failed.Add(uint64(len(msgs)))
			return err
		}
		p.retried.Add(uint64(len(msgs)))
		backoff = min(2*backoff, p.opts.MaxBackoff)
	}
}

// jitter returns a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Pipeline) setDown(err error) {
	if !p.down.Swap(true) {
		p.log.Warn("mqttpersist: store is down; retrying", "error", err)
	}
}

func (p *Pipeline) setUp() {
	if p.down.Load() && p.down.Swap(false) {
		p.log.Info("mqttpersist: store is back")
	}
}

// health pings the store every Health until Close.
func (p *Pipeline) health(pg Pinger) {
	t := time.NewTicker(p.opts.Health)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(p.base, p.opts.Timeout)
		err := pg.Ping(ctx)
		cancel()
		if err != nil {
			if p.base.Err() == nil {
				p.setDown(err)
			}
		} else {
			p.setUp()
		}
	}
}

// Record operations.
const (
	opPublish = 'p'
	opRetain  = 'r'
	opAcked   = 'a'
)

// record is one write in the outbox, encoded as JSON.
type record struct {
	Op     byte     `json:"o"`
	Msg    *Message `json:"m,omitempty"`
	Rule   string   `json:"u,omitempty"` // Msg's rule (unexported there)
	Client string   `json:"c,omitempty"`
	Acks   []Ack    `json:"a,omitempty"`
}

func (r *record) items() int {
	if r.Op == opAcked {
		return len(r.Acks)
	}
	return 1
}

// enqueue adds records to the outbox, making room as Overflow says.
func (p *Pipeline) enqueue(ctx context.Context, recs []record) error {
	enc := make([][]byte, len(recs))
	var size int64
	for i := range recs {
		b, err := json.Marshal(&recs[i])
		if err != nil {
			return Errorf(ErrInvalid, "persist: pipeline %s: encoding a record: %w", p.opts.Name, err)
		}
		enc[i] = b
		size += int64(len(b))
	}
	if size > p.opts.OutboxBytes {
		return Errorf(ErrInvalid, "persist: pipeline %s: %d bytes of records exceed OutboxBytes %d", p.opts.Name, size, p.opts.OutboxBytes)
	}
	b := p.box
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.bytes+size > p.opts.OutboxBytes && !b.closed {
		if p.opts.Overflow == DropOldest {
			p.dropOldest(size)
			continue
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-p.stop:
			b.mu.Lock()
			return p.errClosed("enqueue")
		case <-ctx.Done():
			b.mu.Lock()
			return &Error{Store: "persist: pipeline " + p.opts.Name, Op: "enqueue", Kind: ErrUnavailable, Retryable: true,
				Err: fmt.Errorf("outbox full (%d bytes): %w", p.opts.OutboxBytes, ctx.Err())}
		}
		b.mu.Lock()
	}
	if err := b.add(enc); err != nil {
		if errors.Is(err, ErrClosed) {
			return p.errClosed("enqueue")
		}
		return Wrap("persist: pipeline "+p.opts.Name, "enqueue", ErrUnavailable, err, false)
	}
	return nil
}

// dropOldest drops the oldest records until size more bytes fit (a record
// being written is dropped too: the worker then stops retrying it); box.mu
// is held.
func (p *Pipeline) dropOldest(size int64) {
	b := p.box
	n, items, free := 0, 0, int64(0)
	var topics []string
	for i := b.first; i < b.next && b.bytes-free+size > p.opts.OutboxBytes; i++ {
		if data, err := b.read(i); err == nil {
			var r record
			if json.Unmarshal(data, &r) == nil {
				items += r.items()
				if r.Msg != nil && len(topics) < 3 {
					topics = append(topics, r.Msg.Topic)
				}
			}
		}
		free += int64(b.sizes[i-b.first])
		n++
	}
	b.remove(n)
	total := p.dropped.Add(uint64(items))
	if now := time.Now(); now.Sub(p.dropLog) >= time.Second { // once a second at most
		p.dropLog = now
		p.log.Warn("mqttpersist: outbox full; dropping the oldest records", "items", items, "topics", topics, "dropped_total", total)
	}
}

// batch is the records of one async store call.
type batch struct {
	op     byte
	client string // opAcked
	msgs   []*Message
	acks   []Ack
	sizes  []int // items of each record
}

// trim drops the items of the first n records.
func (bt *batch) trim(n int) {
	k := 0
	for _, s := range bt.sizes[:n] {
		k += s
	}
	bt.sizes = bt.sizes[n:]
	if bt.op == opAcked {
		bt.acks = bt.acks[k:]
	} else {
		bt.msgs = bt.msgs[k:]
	}
}

func (bt *batch) items() int {
	if bt.op == opAcked {
		return len(bt.acks)
	}
	return len(bt.msgs)
}

// run is the async worker: it writes the outbox's records to the store in
// order, a batch at a time, until Close has drained it or gave up.
func (p *Pipeline) run() {
	b := p.box
	lastSync := time.Now()
	for {
		if time.Since(lastSync) >= time.Second {
			b.sync()
			lastSync = time.Now()
		}
		b.mu.Lock()
		for b.first == b.next {
			if p.closed.Load() {
				b.mu.Unlock()
				return
			}
			ch := b.changed
			b.mu.Unlock()
			select {
			case <-ch:
			case <-p.stop:
			case <-time.After(time.Until(lastSync.Add(time.Second))):
				b.sync()
				lastSync = time.Now()
			}
			b.mu.Lock()
		}
		if p.opts.Interval > 0 && b.next-b.first < uint64(p.opts.MaxBatch) && !p.closed.Load() {
			b.mu.Unlock()
			select {
			case <-time.After(p.opts.Interval):
			case <-p.stop:
			}
			b.mu.Lock()
		}
		p.readAhead()
		start := b.first
		if start != p.aheadAt { // dropped while decoding
			b.mu.Unlock()
			continue
		}
		bt, n := p.take()
		b.mu.Unlock()
		ok := bt == nil || p.write(start, bt)
		b.mu.Lock()
		if end := start + uint64(n); ok && end > b.first {
			b.remove(int(end - b.first)) // some may have been dropped meanwhile
		}
		b.mu.Unlock()
		if !ok {
			return // Close gave up draining: the rest stays in the outbox
		}
	}
}

// decoded is an outbox record read and decoded by the worker.
type decoded struct {
	r    record
	size int
	err  error
}

// readAhead reads (box.mu held) and decodes (without it) the records after
// those already in p.ahead, up to MaxBatch records in all, so that
// publishers are not held up by decoding.
func (p *Pipeline) readAhead() {
	b := p.box
	start := b.first
	if p.aheadAt < start { // dropped from a full outbox meanwhile
		p.ahead = p.ahead[min(int(start-p.aheadAt), len(p.ahead)):]
	}
	if len(p.ahead) == 0 || p.aheadAt < start {
		p.aheadAt = start
	}
	var raw [][]byte
	var errs []error
	for i := p.aheadAt + uint64(len(p.ahead)); i < b.next && len(p.ahead)+len(raw) < p.opts.MaxBatch; i++ {
		data, err := b.read(i)
		raw = append(raw, data)
		errs = append(errs, err)
	}
	b.mu.Unlock()
	defer b.mu.Lock()
	for k, data := range raw {
		d := decoded{size: len(data), err: errs[k]}
		if d.err == nil {
			d.err = json.Unmarshal(data, &d.r)
		}
		if d.err == nil && d.r.Op != opPublish && d.r.Op != opRetain && d.r.Op != opAcked {
			d.err = fmt.Errorf("unknown operation %q", d.r.Op)
		}
		if d.err == nil && d.r.Op != opAcked && d.r.Msg == nil {
			d.err = errors.New("no message")
		}
		if d.err == nil && d.r.Msg != nil {
			d.r.Msg.rule = d.r.Rule
		}
		p.ahead = append(p.ahead, d)
	}
}

// take returns the records at the front of p.ahead that make one store call
// (consecutive records of one kind, within MaxBatch and MaxBatchBytes), with
// how many records they span, and takes them off p.ahead. A record that
// cannot be read is counted as failed and skipped.
func (p *Pipeline) take() (*batch, int) {
	var bt *batch
	n, items, size := 0, 0, 0
	for _, d := range p.ahead {
		r := &d.r
		if d.err != nil {
			if bt != nil {
				break // end the batch before it; the next take skips it
			}
			p.failed.Add(1)
			p.log.Error("mqttpersist: unreadable outbox record skipped", "index", p.aheadAt+uint64(n), "error", d.err)
			n++
			continue
		}
		if bt != nil && (r.Op != bt.op || r.Op == opRetain || r.Op == opAcked && r.Client != bt.client ||
			items+r.items() > p.opts.MaxBatch || size+d.size > p.opts.MaxBatchBytes) {
			break
		}
		if bt == nil {
			bt = &batch{op: r.Op, client: r.Client}
		}
		switch r.Op {
		case opAcked:
			bt.acks = append(bt.acks, r.Acks...)
		default:
			bt.msgs = append(bt.msgs, r.Msg)
		}
		bt.sizes = append(bt.sizes, r.items())
		n++
		items += r.items()
		size += d.size
	}
	clear(p.ahead[:n])
	p.ahead = p.ahead[n:]
	p.aheadAt += uint64(n)
	return bt, n
}

// write makes bt's store call, retrying retryable errors with backoff
// until it succeeds, fails permanently (counted, logged, dead-lettered),
// or the records are dropped from a full outbox. It returns false when
// Close gave up draining.
func (p *Pipeline) write(start uint64, bt *batch) bool {
	backoff := p.opts.MinBackoff
	for {
		// Records dropped from the full outbox since the batch was taken
		// (counted there) are not written.
		if start = p.trimDropped(start, bt); len(bt.sizes) == 0 {
			return true
		}
		ctx, cancel := context.WithTimeout(p.base, p.opts.Timeout)
		t0 := time.Now()
		err := p.call(ctx, bt)
		cancel()
		p.observe(bt.items(), t0, err)
		if err == nil {
			// Records dropped during the call were written after all.
			p.box.mu.Lock()
			if k := min(int(p.box.first-min(p.box.first, start)), len(bt.sizes)); k > 0 {
				items := 0
				for _, n := range bt.sizes[:k] {
					items += n
				}
				p.dropped.Add(-uint64(items))
			}
			p.box.mu.Unlock()
			p.written.Add(uint64(bt.items()))
			return true
		}
		if p.base.Err() != nil {
			return false
		}
		if !IsRetryable(err) && !errors.Is(err, context.DeadlineExceeded) {
			if bt.op == opPublish && len(bt.msgs) > 1 {
				// Find the message the store refuses; write the others.
				for i, m := range bt.msgs { // one record each
					if !p.write(start+uint64(i), &batch{op: opPublish, msgs: []*Message{m}, sizes: []int{1}}) {
						return false
					}
				}
				return true
			}
			p.refused(bt, err)
			return true
		}
		p.setDown(err)
		if !sleep(p.base, jitter(backoff)) {
			return false
		}
		p.retried.Add(uint64(bt.items()))
		backoff = min(2*backoff, p.opts.MaxBackoff)
	}
}

// trimDropped takes off bt the records (from index start) that were dropped
// from the outbox, and returns the index of bt's first record.
func (p *Pipeline) trimDropped(start uint64, bt *batch) uint64 {
	p.box.mu.Lock()
	defer p.box.mu.Unlock()
	if first := p.box.first; first > start {
		bt.trim(min(int(first-start), len(bt.sizes)))
		return first
	}
	return start
}

// call makes the store call of a batch; its records were checked when
// they entered the outbox.
func (p *Pipeline) call(ctx context.Context, bt *batch) error {
	ctx = withChecked(ctx, p.limits)
	switch bt.op {
	case opPublish:
		return p.store.Publish(ctx, bt.msgs...)
	case opRetain:
		return p.store.Retain(ctx, bt.msgs[0])
	default:
		return p.store.Acked(ctx, bt.client, bt.acks...)
	}
}

// refused counts, logs and dead-letters a batch the store refused with a
// permanent error.
func (p *Pipeline) refused(bt *batch, err error) {
	p.failed.Add(uint64(bt.items()))
	args := []any{"error", err}
	switch bt.op {
	case opAcked:
		p.log.Error("mqttpersist: store refused acks", append(args, "op", "Acked", "client", bt.client, "acks", len(bt.acks))...)
		return
	case opRetain:
		args = append(args, "op", "Retain")
	default:
		args = append(args, "op", "Publish")
	}
	m := bt.msgs[0]
	if m.rule != "" {
		args = append(args, "rule", m.rule)
	}
	p.log.Error("mqttpersist: store refused a message", append(args, "topic", m.Topic, "client", m.From, "id", m.ID)...)
	if p.opts.DeadLetter == nil {
		return
	}
	ctx, cancel := context.WithTimeout(p.base, p.opts.Timeout)
	defer cancel()
	if derr := p.opts.DeadLetter.Publish(ctx, bt.msgs...); derr != nil {
		p.log.Error("mqttpersist: dead-letter store failed too", "error", derr, "topic", m.Topic, "id", m.ID)
	}
}
