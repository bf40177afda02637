package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// latencySamples is how many messages one iteration of
// BenchmarkCrossNodeLatency times.
const latencySamples = 200

// BenchmarkCrossNodeLatency measures live delivery across nodes: two
// broker processes (nodes a and b) on one database; a persistent QoS 1
// subscriber connected to node a; a publisher on node b publishes one QoS 1
// message at a time (0–10 ms apart, at random) and waits for its PUBACK.
// The latency of a message is from that PUBACK (on node b) to its arrival
// at the subscriber (on node a), both seen by this process; a message
// that arrives before its PUBACK counts 0. Reported per store: p50, p99
// and the largest, in ms, over latencySamples messages per iteration.
// Run it with -benchtime=1x.
func BenchmarkCrossNodeLatency(b *testing.B) {
	backends := append([]testenv.Backend[string]{{Name: "sqlite", Open: testenv.SQLiteURL}}, nodeBackends()...)
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			storeURL := be.Open(b)
			na := startBroker(b, "-store", storeURL, "-node", "a")
			nb := startBroker(b, "-store", storeURL, "-node", "b")
			var mu sync.Mutex
			arrived := map[string]time.Time{}
			signal := make(chan struct{}, 1)
			sub := mqtttest.Dial(b, na.addr, testenv.FreshName("lat-sub-"), mqtttest.Options{Expiry: 3600, Handler: func(p *paho.Publish) {
				now := time.Now()
				mu.Lock()
				if _, ok := arrived[string(p.Payload)]; !ok {
					arrived[string(p.Payload)] = now
				}
				mu.Unlock()
				select {
				case signal <- struct{}{}:
				default:
				}
			}})
			sub.Subscribe("lat/#", 1)
			pub := mqtttest.Dial(b, nb.addr, testenv.FreshName("lat-pub-"), mqtttest.Options{Clean: true})
			// wait returns when payload arrived (its time), or false after
			// timeout.
			wait := func(payload string, timeout time.Duration) (time.Time, bool) {
				deadline := time.After(timeout)
				for {
					mu.Lock()
					at, ok := arrived[payload]
					mu.Unlock()
					if ok {
						return at, true
					}
					select {
					case <-signal:
					case <-deadline:
						return time.Time{}, false
					}
				}
			}
			// Warm up: the first messages set up the watch and the
			// connections' first fetches.
			for i := range 5 {
				p := "warm" + strconv.Itoa(i)
				pub.Publish("lat/x", []byte(p), 1, false)
				if _, ok := wait(p, 10*time.Second); !ok {
					b.Fatalf("a message published on node b did not reach the subscriber on node a in 10s (no live delivery across nodes)\nnode a log:\n%s", warnings(na.errOut(), 10))
				}
			}
			var lat []time.Duration
			late := 0
			b.ResetTimer()
			for n := range b.N {
				for i := range latencySamples {
					p := fmt.Sprintf("m%d-%d", n, i)
					pub.Publish("lat/x", []byte(p), 1, false)
					acked := time.Now()
					at, ok := wait(p, 5*time.Second)
					if !ok {
						late++
						if late >= 3 {
							b.Fatalf("%d messages published on node b did not reach node a in 5s", late)
						}
						continue
					}
					lat = append(lat, max(at.Sub(acked), 0))
					time.Sleep(time.Duration(rand.IntN(10_000)) * time.Microsecond)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(q(0.50)), "p50-ms")
			b.ReportMetric(ms(q(0.99)), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: PUBACK on node b → delivery on node a over %d messages: p50 %v, p99 %v, max %v, %d not within 5s",
				be.Name, len(lat), q(0.50).Round(100*time.Microsecond), q(0.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond), late)
		})
	}
}
