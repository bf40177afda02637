// Package loadgen is the load generator of examples/load, importable by
// other programs (the side-by-side benchmark in tools/bench) and tests:
// publishers send messages as fast as their acks allow while one
// persistent subscriber counts what arrives, and a run reports the
// publish→deliver rate and latency and every message lost or repeated.
//
// It sends traffic only to Options.Addr.
package loadgen

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Options describe a load run: Publishers clients each publish Messages
// messages at QoS to Topic+"/<publisher>", and one persistent subscriber to
// Topic+"/#" counts what arrives.
type Options struct {
	Addr       string
	Publishers int
	Messages   int
	QoS        byte
	Payload    int // payload bytes (at least enough for the sequence label)
	Topic      string
	// Subscriber is the subscriber's client ID ("" for a fresh one); it
	// connects with a session that outlives the connection, as
	// persistence needs.
	Subscriber string
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Progress, when set, is called about every ProgressEvery (default
	// 500 ms) while the run lasts, from a goroutine of its own.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is how far a run has come.
type Progress struct {
	Published, Delivered, Total int
	Elapsed                     time.Duration // since the first publish
}

// Result is what a load run measured.
type Result struct {
	Published  int           // PUBLISHes acknowledged to the publishers
	Delivered  int           // distinct messages the subscriber received
	Duplicates int           // messages received more than once
	Missing    int           // published but not received by the end
	Elapsed    time.Duration // first publish to last delivery (or timeout)
	// Latencies are the publish→deliver times of the delivered messages
	// (from just before the publisher's Publish call to the subscriber's
	// first receipt), sorted.
	Latencies []time.Duration
}

// Rate is delivered messages per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.Elapsed.Seconds()
}

// Percentile is the latency below which a fraction q (0..1) of the
// delivered messages arrived, or 0 when none did.
func (r Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies))+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// String summarizes the result on one line.
func (r Result) String() string {
	return fmt.Sprintf("published %d, delivered %d, duplicates %d, missing %d in %v: %.0f msgs/s",
		r.Published, r.Delivered, r.Duplicates, r.Missing, r.Elapsed.Round(time.Millisecond), r.Rate())
}

// Run runs o against a broker and returns what arrived. It fails only
// when a client cannot connect or publish; lost or repeated messages are
// reported in the result.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Topic == "" {
		o.Topic = "load"
	}
	if o.Subscriber == "" {
		// A fresh ID: a kept session of an earlier run must not count here.
		o.Subscriber = fmt.Sprintf("load-%d", time.Now().UnixNano())
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	total := o.Publishers * o.Messages
	seen := make([]atomic.Int32, total)
	sent := make([]atomic.Int64, total)    // publish time, ns since base
	latency := make([]atomic.Int64, total) // of the first receipt, ns
	var delivered, dups, published atomic.Int64
	var last atomic.Int64
	done := make(chan struct{})
	var doneOnce sync.Once
	base := time.Now() // the clock of sent and latency

	expiry := uint32(3600)
	sub, err := connect(ctx, o.Addr, o.Subscriber, &paho.ConnectProperties{SessionExpiryInterval: &expiry}, false,
		func(p *paho.Publish) {
			i, err := strconv.Atoi(string(p.Payload[:indexByte(p.Payload, ' ')]))
			if err != nil || i < 0 || i >= total {
				return
			}
			if seen[i].Add(1) > 1 {
				dups.Add(1)
				return
			}
			now := time.Now()
			last.Store(now.UnixNano())
			latency[i].Store(int64(now.Sub(base)) - sent[i].Load())
			if delivered.Add(1) == int64(total) {
				doneOnce.Do(func() { close(done) })
			}
		})
	if err != nil {
		return Result{}, fmt.Errorf("subscriber: %w", err)
	}
	defer sub.Disconnect(&paho.Disconnect{})
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: o.Topic + "/#", QoS: o.QoS}}}); err != nil {
		return Result{}, fmt.Errorf("subscribe: %w", err)
	}

	pad := make([]byte, max(o.Payload-12, 0))
	for i := range pad {
		pad[i] = 'x'
	}
	start := time.Now()
	if o.Progress != nil {
		every := o.ProgressEvery
		if every <= 0 {
			every = 500 * time.Millisecond
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					o.Progress(Progress{Published: int(published.Load()), Delivered: int(delivered.Load()), Total: total, Elapsed: time.Since(start)})
				}
			}
		}()
	}
	errs := make(chan error, o.Publishers)
	var wg sync.WaitGroup
	for p := range o.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc, err := connect(ctx, o.Addr, fmt.Sprintf("%s-pub-%d", o.Subscriber, p), nil, true, nil)
			if err != nil {
				errs <- fmt.Errorf("publisher %d: %w", p, err)
				return
			}
			defer pc.Disconnect(&paho.Disconnect{})
			topic := fmt.Sprintf("%s/%d", o.Topic, p)
			for m := range o.Messages {
				i := p*o.Messages + m
				payload := append([]byte(strconv.Itoa(i)+" "), pad...)
				sent[i].Store(int64(time.Since(base)))
				if _, err := pc.Publish(ctx, &paho.Publish{Topic: topic, QoS: o.QoS, Payload: payload}); err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %w", p, m, err)
					return
				}
				published.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, err
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Wait a moment for anything repeated after the last one.
	time.Sleep(500 * time.Millisecond)
	r := Result{Published: int(published.Load()), Delivered: int(delivered.Load()), Duplicates: int(dups.Load())}
	r.Missing = total - r.Delivered
	if l := last.Load(); l > 0 {
		r.Elapsed = time.Unix(0, l).Sub(start)
	}
	r.Latencies = make([]time.Duration, 0, r.Delivered)
	for i := range seen {
		if seen[i].Load() > 0 {
			r.Latencies = append(r.Latencies, time.Duration(latency[i].Load()))
		}
	}
	slices.Sort(r.Latencies)
	return r, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return len(b)
}

// connect connects a paho client; onMsg (if any) runs for every message
// before it is acknowledged.
func connect(ctx context.Context, addr, id string, props *paho.ConnectProperties, clean bool, onMsg func(*paho.Publish)) (*paho.Client, error) {
	nc, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: nc}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			onMsg(r.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cfg)
	if props == nil {
		props = &paho.ConnectProperties{}
	}
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30, Properties: props}); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}
