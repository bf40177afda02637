package persist

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/pause"
)

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
	ctx = withChecked(ctx, &p.limits) // checked by Publish
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
		if !IsRetryable(err) || ctx.Err() != nil || !pause.For(ctx, jitter(backoff)) {
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
