// Package loadgen is the load generator of examples/load, importable by
// other programs (the side-by-side benchmark in tools/bench) and tests:
// publishers send messages as fast as their acks allow while persistent
// subscribers count what arrives, and a run reports the publish→deliver
// rate and latency and every message lost or repeated.
//
// The subscribers are either fanout (Options.Subscribers clients each
// subscribed to Topic+"/#", each of which must get every message) or, with
// Options.Share, the members of one shared subscription group
// ($share/<Share>/<Topic>/#), which together must get every message exactly
// once. A run publishes either a count of messages per publisher
// (Options.Messages) or for a while (Options.Duration).
//
// It sends traffic only to Options.Addr.
package loadgen

import (
	"context"
	"errors"
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
// messages (or, with Duration, as many as they can for that long) at QoS to
// Topic+"/<publisher>" (Topics > 0: Topic+"/<publisher mod Topics>"), and
// Subscribers persistent subscribers to Topic+"/#" (or, with Share, the
// members of $share/<Share>/<Topic>/#) count what arrives.
type Options struct {
	Addr       string
	Publishers int
	Messages   int // per publisher; ignored when Duration is set
	QoS        byte
	Payload    int // payload bytes (at least enough for the sequence label)
	Topic      string
	// Subscriber is the subscriber's client ID ("" for a fresh one); it
	// connects with a session that outlives the connection, as
	// persistence needs. With more than one subscriber it is the prefix
	// of their IDs: Subscriber+"-<n>".
	Subscriber string
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Progress, when set, is called about every ProgressEvery (default
	// 500 ms) while the run lasts, from a goroutine of its own, and not
	// after Run returns.
	Progress      func(Progress)
	ProgressEvery time.Duration

	// Subscribers is how many subscribers count (0 means 1).
	Subscribers int
	// Share, when set, makes the subscribers the members of the shared
	// subscription group of that name: each message must arrive at one
	// of them, once. Unset, each subscriber must get every message.
	Share string
	// Topics, when above 0, spreads the publishers over that many topics:
	// publisher p publishes to Topic+"/<p mod Topics>". 0 gives every
	// publisher a topic of its own, Topic+"/<p>".
	Topics int
	// Duration, when set, publishes for that long instead of Messages per
	// publisher, then waits for the deliveries.
	Duration time.Duration
	// Settle is how long a QoS 0 run waits for one more delivery once
	// the publishers are done before it counts the rest as lost (default
	// 1 s); QoS 1 and 2 runs wait for every message until Timeout.
	Settle time.Duration
	// DropSessions ends the subscribers' sessions when the run is over
	// (DISCONNECT with a session expiry of 0), so that no session of the
	// run is left on the broker to queue messages of later runs (or, in
	// a shared group, to take its share of them).
	DropSessions bool
}

// Progress is how far a run has come.
type Progress struct {
	// Total is the messages to publish, 0 when publishing for a Duration.
	Published, Delivered, Total int
	Elapsed                     time.Duration // since the first publish
}

// Result is what a load run measured. With several fanout subscribers the
// counts are of deliveries (a message to each subscriber); with a shared
// group they are of the group's messages.
type Result struct {
	Published  int           // PUBLISHes acknowledged to the publishers
	Delivered  int           // distinct messages received (summed over fanout subscribers)
	Duplicates int           // receipts of a message already received (by that subscriber, or the group)
	Missing    int           // Expected - Delivered: not received by the end
	Elapsed    time.Duration // first publish to last delivery (or timeout)
	// Latencies are the publish→deliver times of the delivered messages
	// (from just before the publisher's Publish call to the subscriber's
	// first receipt), sorted.
	Latencies []time.Duration

	QoS byte
	// Expected is the deliveries a complete run makes: Published times
	// the fanout subscribers, or Published for a shared group.
	Expected int
	// PublishElapsed is from the first publish to the last publisher's
	// end.
	PublishElapsed time.Duration
	// Share is the shared group's name, "" for fanout.
	Share string
	// Subscribers are the counts of each subscriber (group member).
	Subscribers []SubscriberResult
}

// SubscriberResult is what one subscriber received.
type SubscriberResult struct {
	ID       string
	Received int // PUBLISH packets of the run, repeats included
	// Delivered is the messages this subscriber received first: every
	// distinct message for a fanout subscriber, its share for a member
	// of a group.
	Delivered int
	// Duplicates is the receipts of a message this subscriber (fanout)
	// or the group already had.
	Duplicates int
	// Missing is the messages a fanout subscriber did not get; 0 for a
	// member of a group, whose misses are the group's (Result.Missing).
	Missing int
}

// Rate is delivered messages per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.Elapsed.Seconds()
}

// PublishRate is acknowledged publishes per second of the publish phase.
func (r Result) PublishRate() float64 {
	if r.PublishElapsed <= 0 {
		return 0
	}
	return float64(r.Published) / r.PublishElapsed.Seconds()
}

// Failed reports whether a QoS 1 or 2 message was lost or delivered twice
// (to a fanout subscriber, or to the group). QoS 0 messages may be lost.
func (r Result) Failed() bool {
	return r.QoS > 0 && (r.Missing > 0 || r.Duplicates > 0)
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
	subs := ""
	switch {
	case r.Share != "":
		subs = fmt.Sprintf(" to group %q of %d", r.Share, len(r.Subscribers))
	case len(r.Subscribers) > 1:
		subs = fmt.Sprintf(" to %d subscribers", len(r.Subscribers))
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("published %d, delivered %d%s, duplicates %d, missing %d in %v: %.0f msgs/s; latency ms p50 %s p90 %s p99 %s p99.9 %s max %s",
		r.Published, r.Delivered, subs, r.Duplicates, r.Missing, r.Elapsed.Round(time.Millisecond), r.Rate(),
		ms(r.Percentile(0.5)), ms(r.Percentile(0.9)), ms(r.Percentile(0.99)), ms(r.Percentile(0.999)), ms(r.Percentile(1)))
}

// chunkSize is the messages a chunk of the book keeps.
const chunkSize = 1 << 12

// maxChunks bounds the book of a Duration run (2^28 messages).
const maxChunks = 1 << 16

// chunk is the book of chunkSize consecutive messages: when each was sent
// and, per slot (a fanout subscriber, or the group), how often it arrived
// and its latency.
type chunk struct {
	sent    []atomic.Int64 // ns since the run's base
	seen    []atomic.Int32 // [message*slots+slot]
	latency []atomic.Int64 // of the first receipt, ns
}

// book records every message of a run, in chunks made as publishers reach
// them.
type book struct {
	slots  int
	chunks []atomic.Pointer[chunk]
}

// get returns the chunk of message i, making it when create is set; nil
// when i is beyond the book or (without create) not yet published.
func (b *book) get(i int, create bool) *chunk {
	n := i / chunkSize
	if i < 0 || n >= len(b.chunks) {
		return nil
	}
	c := b.chunks[n].Load()
	if c != nil || !create {
		return c
	}
	c = &chunk{
		sent:    make([]atomic.Int64, chunkSize),
		seen:    make([]atomic.Int32, chunkSize*b.slots),
		latency: make([]atomic.Int64, chunkSize*b.slots),
	}
	if b.chunks[n].CompareAndSwap(nil, c) {
		return c
	}
	return b.chunks[n].Load()
}

// Run runs o against a broker and returns what arrived. It fails only
// when a client cannot connect, subscribe or publish; lost or repeated
// messages are reported in the result.
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
	if o.Subscribers <= 0 {
		o.Subscribers = 1
	}
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	if o.Publishers < 1 || (o.Duration <= 0 && o.Messages < 1) {
		return Result{}, errors.New("loadgen: need a publisher and a message per publisher or a duration")
	}
	if o.QoS > 2 {
		return Result{}, fmt.Errorf("loadgen: QoS %d", o.QoS)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	slots := o.Subscribers // a fanout subscriber each
	if o.Share != "" {
		slots = 1 // the group
	}
	total := o.Publishers * o.Messages // the messages to publish; 0: a Duration run
	b := &book{slots: slots}
	limit := total   // the message indices of the run (read by the subscribers)
	planned := total // for Progress
	if o.Duration > 0 {
		total = 0
		limit = maxChunks * chunkSize
		b.chunks = make([]atomic.Pointer[chunk], maxChunks)
	} else {
		b.chunks = make([]atomic.Pointer[chunk], (total+chunkSize-1)/chunkSize)
	}
	var next atomic.Int64 // the next message index of a Duration run
	var delivered, dups, published atomic.Int64
	var last atomic.Int64 // the last first receipt, Unix ns
	base := time.Now()    // the clock of sent and latency

	type counts struct{ received, delivered, dups atomic.Int64 }
	subCounts := make([]counts, o.Subscribers)
	ids := make([]string, o.Subscribers)
	receive := func(s int, p *paho.Publish) {
		i, err := strconv.Atoi(string(p.Payload[:indexByte(p.Payload, ' ')]))
		if err != nil || i < 0 || i >= limit {
			return // not of this run
		}
		c := b.get(i, false)
		if c == nil {
			return // not of this run
		}
		sc := &subCounts[s]
		sc.received.Add(1)
		slot := 0
		if o.Share == "" {
			slot = s
		}
		k := (i%chunkSize)*slots + slot
		if c.seen[k].Add(1) > 1 {
			sc.dups.Add(1)
			dups.Add(1)
			return
		}
		now := time.Now()
		for l := last.Load(); now.UnixNano() > l && !last.CompareAndSwap(l, now.UnixNano()); l = last.Load() {
		}
		c.latency[k].Store(int64(now.Sub(base)) - c.sent[i%chunkSize].Load())
		sc.delivered.Add(1)
		delivered.Add(1)
	}

	expiry := uint32(3600)
	filter := o.Topic + "/#"
	if o.Share != "" {
		filter = "$share/" + o.Share + "/" + filter
	}
	for s := range o.Subscribers {
		ids[s] = o.Subscriber
		if o.Subscribers > 1 {
			ids[s] = fmt.Sprintf("%s-%d", o.Subscriber, s)
		}
		sub, err := connect(ctx, o.Addr, ids[s], &paho.ConnectProperties{SessionExpiryInterval: &expiry}, false,
			func(p *paho.Publish) { receive(s, p) })
		if err != nil {
			return Result{}, fmt.Errorf("subscriber %s: %w", ids[s], err)
		}
		defer func() {
			d := &paho.Disconnect{}
			if o.DropSessions {
				zero := uint32(0)
				d.Properties = &paho.DisconnectProperties{SessionExpiryInterval: &zero}
			}
			sub.Disconnect(d)
		}()
		if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: o.QoS}}}); err != nil {
			return Result{}, fmt.Errorf("subscriber %s: subscribe to %s: %w", ids[s], filter, err)
		}
	}

	start := time.Now()
	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	if o.Progress != nil {
		every := o.ProgressEvery
		if every <= 0 {
			every = 500 * time.Millisecond
		}
		stop, stopped := make(chan struct{}), make(chan struct{})
		defer func() { close(stop); <-stopped }() // no call once Run returns
		go func() {
			defer close(stopped)
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					o.Progress(Progress{Published: int(published.Load()), Delivered: int(delivered.Load()), Total: planned, Elapsed: time.Since(start)})
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
			if o.Topics > 0 {
				topic = fmt.Sprintf("%s/%d", o.Topic, p%o.Topics)
			}
			for m := 0; ; m++ {
				var i int
				if o.Duration > 0 && time.Now().Before(deadline) {
					i = int(next.Add(1) - 1)
				} else if o.Duration <= 0 && m < o.Messages {
					i = p*o.Messages + m
				} else {
					i = -1
				}
				c := b.get(i, true)
				if c == nil { // done (or the book is full)
					if o.QoS == 0 {
						// The ack of a QoS 1 publish after them says that
						// the broker has read the QoS 0 ones (it reads a
						// connection in order): closing the connection
						// before could lose the last ones here, not in
						// the broker. Subscribers ignore its payload.
						if _, err := pc.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("end")}); err != nil {
							errs <- fmt.Errorf("publisher %d: end: %w", p, err)
						}
					}
					return
				}
				label := strconv.Itoa(i) + " "
				payload := make([]byte, max(o.Payload, len(label)))
				copy(payload, label)
				for j := len(label); j < len(payload); j++ {
					payload[j] = 'x'
				}
				c.sent[i%chunkSize].Store(int64(time.Since(base)))
				if _, err := pc.Publish(ctx, &paho.Publish{Topic: topic, QoS: o.QoS, Payload: payload}); err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %w", p, m, err)
					return
				}
				published.Add(1)
			}
		}()
	}
	wg.Wait()
	publishEnd := time.Now()
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, err
	}
	if o.Duration > 0 {
		total = int(min(next.Load(), int64(len(b.chunks)*chunkSize)))
	}
	expected := total * slots

	// Wait for every delivery (QoS 0: until none came for Settle).
	t := time.NewTicker(5 * time.Millisecond)
	lastCount, lastChange := delivered.Load(), time.Now()
wait:
	for delivered.Load() < int64(expected) {
		select {
		case <-ctx.Done():
			break wait
		case now := <-t.C:
			if d := delivered.Load(); d != lastCount {
				lastCount, lastChange = d, now
			} else if o.QoS == 0 && now.Sub(lastChange) >= o.Settle {
				break wait
			}
		}
	}
	t.Stop()
	// Wait a moment for anything repeated after the last one.
	time.Sleep(500 * time.Millisecond)

	r := Result{
		Published: int(published.Load()), Delivered: int(delivered.Load()), Duplicates: int(dups.Load()),
		QoS: o.QoS, Expected: expected, PublishElapsed: publishEnd.Sub(start), Share: o.Share,
	}
	r.Missing = expected - r.Delivered
	if l := last.Load(); l > 0 {
		r.Elapsed = time.Unix(0, l).Sub(start)
	}
	for s := range o.Subscribers {
		sc := &subCounts[s]
		sr := SubscriberResult{ID: ids[s], Received: int(sc.received.Load()), Delivered: int(sc.delivered.Load()), Duplicates: int(sc.dups.Load())}
		if o.Share == "" {
			sr.Missing = total - sr.Delivered
		}
		r.Subscribers = append(r.Subscribers, sr)
	}
	r.Latencies = make([]time.Duration, 0, r.Delivered)
	for i := range total {
		c := b.get(i, false)
		for s := range slots {
			k := (i%chunkSize)*slots + s
			if c != nil && c.seen[k].Load() > 0 {
				r.Latencies = append(r.Latencies, time.Duration(c.latency[k].Load()))
			}
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
