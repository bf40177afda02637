package persist

import (
	"context"
	"time"
)

// setDown marks the store down (logged once) after a retryable failure.
func (p *Pipeline) setDown(err error) {
	if !p.down.Swap(true) {
		p.log.Warn("mqttpersist: store is down; retrying", "error", err)
	}
}

// setUp marks the store up again (logged once) after a success.
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
