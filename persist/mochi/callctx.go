package mochi

import (
	"context"
	"sync"
	"time"
)

// callCtx is the context of one store call (Hook.call): the values and
// cancellation of its parent and a deadline. Unlike context.WithTimeout it
// starts no timer and does not join its parent's cancellation until Done or
// Err is first asked for: most calls to an async Pipeline return without
// asking, and a timer started and stopped for each PUBLISH and ack costs
// the broker more than the call itself. Once asked, it is the context
// context.WithDeadline makes.
type callCtx struct {
	context.Context // the parent, for Value

	deadline time.Time
	once     sync.Once
	ctx      context.Context // set by once: WithDeadline, or canceled by stop
	cancel   context.CancelFunc
}

// canceled is the context of a callCtx stopped before it started.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// newCallCtx returns the context of a call that may take timeout from now.
func newCallCtx(parent context.Context, timeout time.Duration) *callCtx {
	return &callCtx{Context: parent, deadline: time.Now().Add(timeout)}
}

// start makes the WithDeadline context, once, and returns it.
func (c *callCtx) start() context.Context {
	c.once.Do(func() { c.ctx, c.cancel = context.WithDeadline(c.Context, c.deadline) })
	return c.ctx
}

// Deadline returns the call's deadline.
func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done returns a channel closed when the deadline passes, the parent is
// canceled or stop is called.
func (c *callCtx) Done() <-chan struct{} { return c.start().Done() }

// Err returns why Done is closed, or nil.
func (c *callCtx) Err() error { return c.start().Err() }

// stop ends the call's context (its CancelFunc).
func (c *callCtx) stop() {
	c.once.Do(func() { c.ctx = canceled })
	if c.cancel != nil {
		c.cancel()
	}
}
