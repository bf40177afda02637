package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// tap is a mochi hook that records the topics and QoS of the publishes and
// subscriptions it sees, and can make one subscriber miss message 7 (it
// replaces the payload with one of no run).
type tap struct {
	mqtt.HookBase
	mu          sync.Mutex
	topics      map[string]int  // publishes per topic
	publishQoS  map[byte]int    // publishes per QoS
	filters     map[string]byte // subscription filter → requested QoS
	subscribers map[string]bool // client IDs that subscribed
	lose7For    string          // client ID ("*": any) whose delivery of message 7 is blanked
}

func (h *tap) ID() string { return "tap" }

func (h *tap) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnSubscribe || b == mqtt.OnPacketEncode
}

func (h *tap) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !cl.Net.Inline {
		h.mu.Lock()
		h.topics[pk.TopicName]++
		h.publishQoS[pk.FixedHeader.Qos]++
		h.mu.Unlock()
	}
	return pk, nil
}

func (h *tap) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subscribers[cl.ID] = true
	for _, f := range pk.Filters {
		h.filters[f.Filter] = f.Qos
	}
	return pk
}

func (h *tap) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish && h.lose7For != "" && (h.lose7For == "*" || h.lose7For == cl.ID) && bytes.HasPrefix(pk.Payload, []byte("7 ")) {
		pk.Payload = []byte("lost") // a new slice: the other subscribers' copies stay
	}
	return pk
}

// broker starts a mochi broker (which has shared subscriptions) on
// loopback with a tap; lose7For is set before any traffic.
func broker(t *testing.T, lose7For string) (*mqtt.Server, string, *tap) {
	t.Helper()
	server := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	h := &tap{topics: map[string]int{}, publishQoS: map[byte]int{}, filters: map[string]byte{}, subscribers: map[string]bool{}, lose7For: lose7For}
	if err := server.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, tcp.Address(), h
}

// TestRun drives a mochi broker on loopback: every message arrives once,
// with a latency each, sorted, and the progress callback is called.
func TestRun(t *testing.T) {
	_, addr, h := broker(t, "")
	var progress atomic.Int64
	r, err := Run(context.Background(), Options{
		Addr: addr, Publishers: 3, Messages: 200, QoS: 1, Payload: 32, Timeout: time.Minute,
		Progress: func(Progress) { progress.Add(1) }, ProgressEvery: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 600 || r.Delivered != 600 || r.Missing != 0 || r.Duplicates != 0 || r.Expected != 600 || r.Failed() {
		t.Fatalf("got %v, want 600 published and delivered once each", r)
	}
	if len(r.Subscribers) != 1 || r.Subscribers[0].Received != 600 || r.Subscribers[0].Delivered != 600 || r.Subscribers[0].Missing != 0 {
		t.Fatalf("subscriber counts %+v, want one subscriber with all 600", r.Subscribers)
	}
	if len(r.Latencies) != 600 {
		t.Fatalf("%d latencies for 600 messages", len(r.Latencies))
	}
	for i, d := range r.Latencies {
		if d <= 0 || (i > 0 && d < r.Latencies[i-1]) {
			t.Fatalf("latency %d = %v after %v: want positive and sorted", i, d, r.Latencies[max(i-1, 0)])
		}
	}
	if p50, p99, p100 := r.Percentile(0.5), r.Percentile(0.99), r.Percentile(1); p50 != r.Latencies[299] || p99 != r.Latencies[593] || p100 != r.Latencies[599] {
		t.Errorf("Percentile(0.5, 0.99, 1) = %v, %v, %v; want the 300th, 594th and 600th of %d", p50, p99, p100, len(r.Latencies))
	}
	if r.Percentile(1) > r.Elapsed {
		t.Errorf("largest latency %v beyond the run's %v", r.Percentile(1), r.Elapsed)
	}
	if progress.Load() == 0 {
		t.Error("Progress was never called")
	}
	if (Result{}).Percentile(0.5) != 0 {
		t.Error("Percentile of no latencies is not 0")
	}
	// The default layout, which tools/bench compares across runs: a topic
	// per publisher under load/, one subscription to load/#.
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := map[string]int{"load/0": 200, "load/1": 200, "load/2": 200}; !maps.Equal(h.topics, want) {
		t.Errorf("publishes per topic %v, want %v", h.topics, want)
	}
	if want := map[string]byte{"load/#": 1}; !maps.Equal(h.filters, want) {
		t.Errorf("subscriptions %v, want %v", h.filters, want)
	}
	if want := map[byte]int{1: 600}; !maps.Equal(h.publishQoS, want) {
		t.Errorf("publishes per QoS %v, want %v", h.publishQoS, want)
	}
}

// TestPayload: a payload is Payload bytes (or just the label when that is
// longer).
func TestPayload(t *testing.T) {
	server, addr, _ := broker(t, "")
	var sizes sync.Map
	if err := server.Subscribe("size/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		sizes.Store(len(pk.Payload), true)
	}); err != nil {
		t.Fatal(err)
	}
	for _, payload := range []int{100, 1} {
		sizes.Clear()
		r, err := Run(context.Background(), Options{Addr: addr, Topic: "size", Publishers: 1, Messages: 5, QoS: 1, Payload: payload, Timeout: time.Minute})
		if err != nil || r.Failed() {
			t.Fatal(r, err)
		}
		var got []int
		sizes.Range(func(k, _ any) bool { got = append(got, k.(int)); return true })
		if want := []int{max(payload, 2)}; !slices.Equal(got, want) { // "0 " to "4 "
			t.Errorf("Payload %d: sizes %v, want %v", payload, got, want)
		}
	}
}

// TestFanout: each of three persistent subscribers gets every message of
// every publisher, once.
func TestFanout(t *testing.T) {
	_, addr, h := broker(t, "")
	r, err := Run(context.Background(), Options{Addr: addr, Subscriber: "fan", Subscribers: 3, Publishers: 4, Messages: 100, QoS: 1, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 400 || r.Expected != 1200 || r.Delivered != 1200 || r.Missing != 0 || r.Duplicates != 0 || r.Failed() || len(r.Latencies) != 1200 {
		t.Fatalf("got %v (expected %d, %d latencies), want 400 messages to each of 3", r, r.Expected, len(r.Latencies))
	}
	for i, s := range r.Subscribers {
		if want := (SubscriberResult{ID: fmt.Sprintf("fan-%d", i), Received: 400, Delivered: 400}); s != want {
			t.Errorf("subscriber %d: %+v, want %+v", i, s, want)
		}
	}
	if len(r.Subscribers) != 3 {
		t.Fatalf("%d subscriber results, want 3", len(r.Subscribers))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.subscribers["fan-0"] || !h.subscribers["fan-1"] || !h.subscribers["fan-2"] {
		t.Errorf("subscribed clients %v, want fan-0, fan-1, fan-2", h.subscribers)
	}
}

// TestShare: the three members of $share/g/load/# get each message once
// between them.
func TestShare(t *testing.T) {
	_, addr, h := broker(t, "")
	r, err := Run(context.Background(), Options{Addr: addr, Subscriber: "sh", Subscribers: 3, Share: "g", Publishers: 4, Messages: 150, QoS: 1, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published != 600 || r.Expected != 600 || r.Delivered != 600 || r.Missing != 0 || r.Duplicates != 0 || r.Failed() || len(r.Latencies) != 600 {
		t.Fatalf("got %v (expected %d), want 600 messages to the group, each once", r, r.Expected)
	}
	sum, members := 0, 0
	for _, s := range r.Subscribers {
		if s.Received != s.Delivered || s.Duplicates != 0 || s.Missing != 0 {
			t.Errorf("member %+v: want its share once, no misses of its own", s)
		}
		sum += s.Delivered
		if s.Delivered > 0 {
			members++
		}
	}
	if sum != 600 || len(r.Subscribers) != 3 {
		t.Errorf("members %+v got %d between them, want 3 members and 600", r.Subscribers, sum)
	}
	if members < 2 { // mochi picks a member per message at random
		t.Errorf("members %+v: want the messages spread over the group", r.Subscribers)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := map[string]byte{"$share/g/load/#": 1}; !maps.Equal(h.filters, want) {
		t.Errorf("subscriptions %v, want %v", h.filters, want)
	}
}

// TestLostAndDoubled: a message a subscriber misses, or one it gets twice,
// is counted for that subscriber (fanout) or the group, and fails a QoS 1
// run but not a QoS 0 one.
func TestLostAndDoubled(t *testing.T) {
	for _, c := range []struct {
		name, share, lose7For string
		qos                   byte
		double                bool
		wantMissing, wantDups []int // per subscriber
		missing, dups         int
		failed                bool
	}{
		{name: "fanout lost", lose7For: "x-1", qos: 1, wantMissing: []int{0, 1, 0}, wantDups: []int{0, 0, 0}, missing: 1, failed: true},
		{name: "fanout doubled", double: true, qos: 1, wantMissing: []int{0, 0, 0}, wantDups: []int{1, 1, 1}, dups: 3, failed: true},
		{name: "share lost", share: "g", lose7For: "*", qos: 1, missing: 1, failed: true},
		{name: "share doubled", share: "g", double: true, qos: 1, dups: 1, failed: true},
		{name: "fanout QoS 0 lost", lose7For: "x-1", qos: 0, wantMissing: []int{0, 1, 0}, wantDups: []int{0, 0, 0}, missing: 1, failed: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			server, addr, _ := broker(t, c.lose7For)
			var once sync.Once
			timeout := time.Minute
			if c.missing > 0 {
				timeout = 3 * time.Second // a QoS 1 run waits for the lost one until then
			}
			o := Options{Addr: addr, Subscriber: "x", Subscribers: 3, Share: c.share, Publishers: 2, Messages: 50, QoS: c.qos, Timeout: timeout, Settle: 300 * time.Millisecond}
			if c.double {
				// Once all have arrived, the broker sends message 0 again.
				o.ProgressEvery = time.Millisecond
				o.Progress = func(p Progress) {
					all := 300
					if c.share != "" {
						all = 100
					}
					if p.Delivered == all {
						once.Do(func() { server.Publish("load/0", []byte("0 again"), false, 1) })
					}
				}
			}
			r, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Missing != c.missing || r.Duplicates != c.dups || r.Failed() != c.failed {
				t.Errorf("got %v, failed %v; want missing %d, duplicates %d, failed %v", r, r.Failed(), c.missing, c.dups, c.failed)
			}
			for i, s := range r.Subscribers {
				if c.share == "" && (s.Missing != c.wantMissing[i] || s.Duplicates != c.wantDups[i] || s.Delivered != 100-s.Missing) {
					t.Errorf("subscriber %+v: want missing %d, duplicates %d", s, c.wantMissing[i], c.wantDups[i])
				}
			}
		})
	}
}

// TestQoS: QoS 0 and 2 publish and subscribe at that QoS; a QoS 2 run
// gets every message once, and a QoS 0 run does not fail.
func TestQoS(t *testing.T) {
	for _, qos := range []byte{0, 2} {
		t.Run(fmt.Sprint("QoS ", qos), func(t *testing.T) {
			_, addr, h := broker(t, "")
			r, err := Run(context.Background(), Options{Addr: addr, Subscribers: 2, Publishers: 2, Messages: 100, QoS: qos, Timeout: time.Minute, Settle: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if r.Published != 200 || r.Expected != 400 || r.Delivered+r.Missing != 400 || r.Failed() {
				t.Fatalf("got %v (failed %v), want 200 published, 400 deliveries expected", r, r.Failed())
			}
			if qos == 2 && (r.Delivered != 400 || r.Duplicates != 0) {
				t.Fatalf("QoS 2: got %v, want every message to both subscribers once", r)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			want := map[byte]int{qos: 200}
			if qos == 0 {
				want[1] = 2 // the publishers' end
			}
			if !maps.Equal(h.publishQoS, want) {
				t.Errorf("publishes per QoS %v, want %v", h.publishQoS, want)
			}
			if want := map[string]byte{"load/#": qos}; !maps.Equal(h.filters, want) {
				t.Errorf("subscriptions %v, want %v", h.filters, want)
			}
		})
	}
}

// TestTopics: 5 publishers over 2 topics publish to load/0 (publishers 0,
// 2, 4) and load/1 (1, 3), and both subscribers get every message.
func TestTopics(t *testing.T) {
	_, addr, h := broker(t, "")
	r, err := Run(context.Background(), Options{Addr: addr, Subscribers: 2, Publishers: 5, Messages: 40, Topics: 2, QoS: 1, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Delivered != 400 || r.Failed() {
		t.Fatalf("got %v, want 200 messages to each of 2", r)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := map[string]int{"load/0": 120, "load/1": 80}; !maps.Equal(h.topics, want) {
		t.Errorf("publishes per topic %v, want %v", h.topics, want)
	}
}

// TestDuration: publishing for 300 ms publishes as many as it can in that
// time, and every one arrives at both subscribers.
func TestDuration(t *testing.T) {
	_, addr, h := broker(t, "")
	var totals []int
	var mu sync.Mutex
	r, err := Run(context.Background(), Options{
		Addr: addr, Subscribers: 2, Publishers: 2, Duration: 300 * time.Millisecond, QoS: 1, Timeout: time.Minute,
		ProgressEvery: 20 * time.Millisecond, Progress: func(p Progress) { mu.Lock(); totals = append(totals, p.Total); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Published < 10 || r.Expected != 2*r.Published || r.Delivered != r.Expected || r.Failed() || len(r.Latencies) != r.Delivered {
		t.Fatalf("got %v (expected %d), want every one of at least 10 published to both", r, r.Expected)
	}
	for _, s := range r.Subscribers {
		if s.Delivered != r.Published || s.Missing != 0 || s.Duplicates != 0 {
			t.Errorf("subscriber %+v, want all %d", s, r.Published)
		}
	}
	if r.PublishElapsed < 300*time.Millisecond || r.PublishElapsed > 10*time.Second {
		t.Errorf("published for %v, want about 300 ms", r.PublishElapsed)
	}
	h.mu.Lock()
	n := h.topics["load/0"] + h.topics["load/1"]
	h.mu.Unlock()
	if n != r.Published {
		t.Errorf("broker saw %d publishes, result says %d", n, r.Published)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(totals) == 0 || slices.Max(totals) != 0 {
		t.Errorf("progress totals %v, want 0 (unknown) for a duration run", totals)
	}
}
