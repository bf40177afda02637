package persist

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/pause"
)

// items is how many items a record counts for in the stats: messages and
// acks. A client's state and subscriptions are records of the outbox but no
// items.
func (r *record) items() int {
	switch r.Op {
	case opAcked:
		return len(r.Acks)
	case opConnected, opSubscribed:
		return 0
	}
	return 1
}

// single reports whether records of op are each a store call of their own.
func single(op byte) bool { return op == opRetain || op == opConnected || op == opSubscribed }

// check says what is wrong with a record read from the outbox, or nil.
func (r *record) check() error {
	switch {
	case r.Op != opPublish && r.Op != opRetain && r.Op != opAcked && r.Op != opConnected && r.Op != opSubscribed:
		return fmt.Errorf("unknown operation %q", r.Op)
	case (r.Op == opPublish || r.Op == opRetain) && r.Msg == nil:
		return errors.New("no message")
	case r.Op == opConnected && r.Conn == nil:
		return errors.New("no client")
	}
	return nil
}

// enqueue adds records to the outbox, making room as Overflow says.
func (p *Pipeline) enqueue(ctx context.Context, recs []record) error {
	n := 0
	for i := range recs {
		n += recordSize(&recs[i])
	}
	buf := make([]byte, 0, n)
	var small [4][]byte
	enc := small[:0]
	if len(recs) > len(small) {
		enc = make([][]byte, 0, len(recs))
	}
	enc = enc[:len(recs)]
	for i := range recs {
		at := len(buf)
		buf = appendRecord(buf, &recs[i])
		enc[i] = buf[at:len(buf):len(buf)]
	}
	size := int64(len(buf))
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
		ch := b.wait()
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
	var topics, clients []string
	for i := b.first; i < b.next && b.bytes-free+size > p.opts.OutboxBytes; i++ {
		if data, err := b.read(i); err == nil {
			if r, err := decodeRecord(data); err == nil {
				items += r.items()
				if r.Msg != nil && len(topics) < 3 {
					topics = append(topics, r.Msg.Topic)
				}
				switch r.Op {
				case opConnected:
					clients = append(clients, r.Conn.ID)
				case opSubscribed:
					clients = append(clients, r.Client)
				}
			}
		}
		free += int64(b.sizes[i-b.first])
		n++
	}
	b.remove(n)
	if len(clients) > 0 { // not items, but lost all the same: always said
		p.log.Warn("mqttpersist: outbox full; dropped client state or subscriptions", "clients", clients)
	}
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
	one    *record // opConnected, opSubscribed
	sizes  []int   // items of each record
}

// trim drops the items of the first n records.
func (bt *batch) trim(n int) {
	k := 0
	for _, s := range bt.sizes[:n] {
		k += s
	}
	bt.sizes = bt.sizes[n:]
	switch {
	case bt.op == opAcked:
		bt.acks = bt.acks[k:]
	case bt.one != nil:
		if n > 0 {
			bt.one = nil
		}
	default:
		bt.msgs = bt.msgs[k:]
	}
}

func (bt *batch) items() int {
	switch {
	case bt.op == opAcked:
		return len(bt.acks)
	case bt.op == opConnected || bt.op == opSubscribed:
		return 0
	}
	return len(bt.msgs)
}

// run is the async worker: it writes the outbox's records to the store in
// order, a batch at a time, until Close has drained it or gave up.
func (p *Pipeline) run() {
	b := p.box
	lastSync := time.Now()
	var wait *time.Timer // Interval's
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
			ch := b.wait()
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
			if wait == nil {
				wait = time.NewTimer(p.opts.Interval)
			} else {
				wait.Reset(p.opts.Interval)
			}
			select {
			case <-wait.C:
			case <-p.hurry:
			case <-p.stop:
			}
			wait.Stop()
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
	raw := p.raw[:0]
	for i := p.aheadAt + uint64(len(p.ahead)); i < b.next && len(p.ahead)+len(raw) < p.opts.MaxBatch; i++ {
		data, err := b.read(i)
		raw = append(raw, rawRecord{data, err})
	}
	b.mu.Unlock()
	defer b.mu.Lock()
	for _, rr := range raw {
		d := decoded{size: len(rr.data), err: rr.err}
		if d.err == nil {
			d.r, d.err = decodeRecord(rr.data)
		}
		if d.err == nil && d.r.Msg != nil {
			d.r.Msg.rule = d.r.Rule
		}
		p.ahead = append(p.ahead, d)
	}
	clear(raw)
	p.raw = raw[:0]
}

// rawRecord is a record as readAhead read it from the outbox.
type rawRecord struct {
	data []byte
	err  error
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
		if bt != nil && (r.Op != bt.op || single(r.Op) || r.Op == opAcked && r.Client != bt.client ||
			items+r.items() > p.opts.MaxBatch || size+d.size > p.opts.MaxBatchBytes) {
			break
		}
		if bt == nil {
			bt = &batch{op: r.Op, client: r.Client}
		}
		switch r.Op {
		case opAcked:
			bt.acks = append(bt.acks, r.Acks...)
		case opConnected, opSubscribed:
			bt.one = r
		default:
			bt.msgs = append(bt.msgs, r.Msg)
		}
		bt.sizes = append(bt.sizes, r.items())
		n++
		items += r.items()
		size += d.size
	}
	clear(p.ahead[:n])
	if n == len(p.ahead) {
		p.ahead = p.ahead[:0] // all taken: the next readAhead appends from the start
	} else {
		p.ahead = p.ahead[n:]
	}
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
		if !pause.For(p.base, jitter(backoff)) {
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
	ctx = withChecked(ctx, &p.limits)
	switch bt.op {
	case opPublish:
		return p.store.Publish(ctx, bt.msgs...)
	case opRetain:
		return p.store.Retain(ctx, bt.msgs[0])
	case opConnected:
		return p.store.Connected(ctx, bt.one.Conn)
	case opSubscribed:
		return p.store.Subscribed(ctx, bt.one.Client, bt.one.Subs, bt.one.Removed)
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
	case opConnected:
		p.log.Error("mqttpersist: store refused a client's state", append(args, "op", "Connected", "client", bt.one.Conn.ID)...)
		return
	case opSubscribed:
		p.log.Error("mqttpersist: store refused subscriptions", append(args, "op", "Subscribed", "client", bt.one.Client,
			"subscriptions", len(bt.one.Subs), "removed", len(bt.one.Removed))...)
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
