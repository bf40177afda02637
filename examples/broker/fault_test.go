package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
)

// Fault tests: real database servers of the test's own (testenv.Start*)
// are stopped and started under a streaming broker, and the broker
// process is killed, as the "never lose a message" issue asks.

// storedPayloads opens the store at storeURL as the broker does and
// returns the payloads of every message stored on topics matching filter
// (a fanout fetch by a client with no cursor sees them all), in ID order.
func storedPayloads(t *testing.T, storeURL, filter string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := openStore(ctx, storeURL)
	if err != nil {
		t.Fatalf("open %s: %v", storeURL, err)
	}
	defer s.(persist.Closer).Close()
	msgs, err := s.FetchOffline(ctx, "fault-checker", filter, persist.Fetch{})
	if err != nil {
		t.Fatalf("fetch %s: %v", filter, err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}

// exactlyOnce reports what differs between the multiset got and want:
// missing and duplicated payloads.
func exactlyOnce(got, want []string) string {
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	var missing, dup []string
	for _, w := range want {
		switch seen[w] {
		case 0:
			missing = append(missing, w)
		case 1:
		default:
			dup = append(dup, w)
		}
		delete(seen, w)
	}
	if len(missing) == 0 && len(dup) == 0 && len(seen) == 0 {
		return ""
	}
	return fmt.Sprintf("%d stored, want %d: %d missing %v, %d duplicated %v, %d unexpected",
		len(got), len(want), len(missing), head(missing), len(dup), head(dup), len(seen))
}

func head(s []string) []string { return s[:min(5, len(s))] }

// pinger is an MQTT 3.1.1 connection of raw packets that sends PINGREQs
// and times the PINGRESPs.
type pinger struct {
	conn net.Conn
}

func dialPinger(t *testing.T, addr string) *pinger {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	id := "pinger"
	// CONNECT: protocol "MQTT" level 4, clean session, keep alive 60 s.
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("pinger CONNACK %x: %v", ack, err)
	}
	return &pinger{conn: c}
}

// ping sends a PINGREQ and returns how long the PINGRESP took, or an error
// when none came within 2 s.
func (p *pinger) ping() (time.Duration, error) {
	start := time.Now()
	p.conn.SetDeadline(start.Add(2 * time.Second))
	if _, err := p.conn.Write([]byte{0xc0, 0}); err != nil {
		return 0, err
	}
	resp := make([]byte, 2)
	if _, err := io.ReadFull(p.conn, resp); err != nil {
		return 0, err
	}
	if resp[0] != 0xd0 || resp[1] != 0 {
		return 0, fmt.Errorf("got %x, not a PINGRESP", resp)
	}
	return time.Since(start), nil
}

// waitMetric scrapes until cond holds for the metrics, failing after waitLong.
func waitMetric(t *testing.T, b *broker, what string, cond func(m map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		m := b.scrape(t)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: metrics %v", what, storeMetrics(m))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storeMetrics keeps the mqttpersist_store_ samples, for messages.
func storeMetrics(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "mqttpersist_store_") && !strings.Contains(k, "_bucket") {
			out[k] = v
		}
	}
	return out
}

func privateServer(t *testing.T, kind string) *testenv.Server {
	if kind == "redis" {
		return testenv.StartRedis(t)
	}
	return testenv.StartPostgres(t)
}

// TestAsyncOutage: 10,000 QoS 1 messages streamed through an async broker;
// the database server is stopped for 10 s in the middle and started again.
// The publisher is never refused, the broker answers PINGREQs throughout,
// and afterwards every message is in the database exactly once and the
// outbox is empty, as /metrics says.
func TestAsyncOutage(t *testing.T) {
	for _, kind := range []string{"postgres", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := privateServer(t, kind)
			b := startBroker(t, "-store", srv.URL(), "-mode", "async", "-outbox", filepath.Join(t.TempDir(), "outbox"), "-metrics", "127.0.0.1:0")
			store := `{mode="async",store="default"}`
			p := dialPinger(t, b.addr)
			pub := mqtttest.Dial(t, b.addr, "streamer", mqtttest.Options{Clean: true})

			const total, rate = 10000, 600 // messages, per second: ~17 s of streaming
			want := mqtttest.Numbered("s", total)
			var refused []string
			done := make(chan struct{})
			go func() {
				defer close(done)
				start := time.Now()
				for i, pl := range want {
					if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
						time.Sleep(d)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := pub.PC.Publish(ctx, &paho.Publish{Topic: "s/x", Payload: []byte(pl), QoS: 1})
					cancel()
					if err != nil {
						refused = append(refused, fmt.Sprintf("%s: %v", pl, err))
					}
				}
			}()

			time.Sleep(3 * time.Second)
			srv.Stop(t)
			down := time.Now()
			var slowest time.Duration
			var pingErrs []string
			for time.Since(down) < 10*time.Second {
				d, err := p.ping()
				if err != nil {
					pingErrs = append(pingErrs, err.Error())
				}
				slowest = max(slowest, d)
				time.Sleep(250 * time.Millisecond)
			}
			during := storeMetrics(b.scrape(t))
			srv.Start(t)
			<-done
			if len(refused) > 0 {
				t.Errorf("%d publishes refused, first: %s", len(refused), refused[0])
			}
			if len(pingErrs) > 0 {
				t.Errorf("PINGREQs unanswered during the outage: %d, first: %s", len(pingErrs), pingErrs[0])
			}
			t.Logf("slowest PINGRESP during the outage: %v", slowest)
			if during["mqttpersist_store_up"+store] != 0 || during["mqttpersist_store_queued"+store] == 0 ||
				during["mqttpersist_store_outbox_bytes"+store] == 0 || during["mqttpersist_store_retried_total"+store] == 0 {
				t.Errorf("metrics during the outage do not show it: %v", during)
			}

			after := waitMetric(t, b, "the outbox to empty", func(m map[string]float64) bool {
				return m["mqttpersist_store_queued"+store] == 0 && m["mqttpersist_store_written_total"+store] >= total
			})
			for key, v := range map[string]float64{
				"mqttpersist_store_written_total": total,
				"mqttpersist_store_outbox_bytes":  0,
				"mqttpersist_store_failed_total":  0,
				"mqttpersist_store_dropped_total": 0,
				"mqttpersist_store_up":            1,
			} {
				if after[key+store] != v {
					t.Errorf("after the outage %s = %v, want %v", key, after[key+store], v)
				}
			}
			if d := exactlyOnce(storedPayloads(t, srv.URL(), "s/#"), want); d != "" {
				t.Fatalf("after the outage: %s", d)
			}
			if !strings.Contains(b.errOut(), "store is down") || !strings.Contains(b.errOut(), "store is back") {
				t.Errorf("the broker did not log the outage and the recovery:\n%s", tail(b.errOut(), 20))
			}
			b.stop()
		})
	}
}

// TestAsyncKilledWhileDown: the database is down and the outbox holds
// messages when the broker is killed (SIGKILL). A new broker process on the
// same outbox starts while the database is still down, the database comes
// back, and every message reaches the database and the persistent
// subscriber that was offline, once, in order.
func TestAsyncKilledWhileDown(t *testing.T) {
	for _, kind := range []string{"postgres", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := privateServer(t, kind)
			outbox := filepath.Join(t.TempDir(), "outbox")
			args := []string{"-store", srv.URL(), "-mode", "async", "-outbox", outbox, "-metrics", "127.0.0.1:0"}
			store := `{mode="async",store="default"}`
			b1 := startBroker(t, args...)
			sub := mqtttest.Dial(t, b1.addr, "killed-sub", session)
			sub.Subscribe("k/#", 1)
			sub.Disconnect()

			pub := mqtttest.Dial(t, b1.addr, "killed-pub", mqtttest.Options{Clean: true})
			srv.Stop(t)
			want := mqtttest.Numbered("k", 1000)
			for _, pl := range want {
				pub.Publish("k/x", []byte(pl), 1, false) // fails the test unless PUBACKed
			}
			// (and the clients' state records written since the database went down)
			waitMetric(t, b1, "the outbox to hold every message", func(m map[string]float64) bool {
				return m["mqttpersist_store_queued"+store] >= float64(len(want))
			})
			b1.cmd.Process.Kill()
			<-b1.done

			// The new broker starts while the database is down: it waits
			// for it (-wait), and the database comes back once it said so.
			back := make(chan struct{})
			var once sync.Once
			b2 := startBrokerWith(t, func(errOut string) {
				if strings.Contains(errOut, "store unreachable") {
					once.Do(func() { go func() { srv.Start(t); close(back) }() })
				}
			}, append(args, "-wait", "60s")...)
			<-back
			if !strings.Contains(b2.errOut(), "store unreachable") {
				t.Errorf("the restarted broker did not wait for its database:\n%s", tail(b2.errOut(), 10))
			}
			waitMetric(t, b2, "the outbox to empty", func(m map[string]float64) bool {
				return m["mqttpersist_store_queued"+store] == 0 && m["mqttpersist_store_written_total"+store] >= float64(len(want))
			})
			if d := exactlyOnce(storedPayloads(t, srv.URL(), "k/#"), want); d != "" {
				t.Fatalf("after the restart: %s", d)
			}
			sub = mqtttest.Dial(t, b2.addr, "killed-sub", session)
			got := mqtttest.Payloads(sub.WaitFor(len(want), waitLong, quiet))
			if d := mqtttest.Diff(got, want); d != "" {
				t.Fatalf("the subscriber after the restart: %s", d)
			}
			b2.stop()
		})
	}
}

// TestDurableKilledMidStream: in durable mode (the default) the broker is
// killed (SIGKILL) while ten publishers stream; every message whose PUBACK
// a publisher received is in the database after the restart.
func TestDurableKilledMidStream(t *testing.T) {
	for _, kind := range []string{"postgres", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var storeURL string
			if kind == "redis" {
				storeURL = redisURL(t)
			} else {
				storeURL = testenv.PostgresURL(t)
			}
			b := startBroker(t, "-store", storeURL, "-metrics", "127.0.0.1:0")
			var mu sync.Mutex
			var acked []string
			var wg sync.WaitGroup
			for w := range 10 {
				pub := mqtttest.Dial(t, b.addr, fmt.Sprintf("durable-pub-%d", w), mqtttest.Options{Clean: true})
				wg.Go(func() {
					for i := 0; ; i++ {
						pl := fmt.Sprintf("p%d-%06d", w, i)
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_, err := pub.PC.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("d/%d", w), Payload: []byte(pl), QoS: 1})
						cancel()
						if err != nil {
							return // the broker is gone
						}
						mu.Lock()
						acked = append(acked, pl)
						mu.Unlock()
					}
				})
			}
			time.Sleep(2 * time.Second)
			mu.Lock()
			n0 := len(acked)
			mu.Unlock()
			m := b.scrape(t)
			b.cmd.Process.Kill()
			<-b.done
			wg.Wait()
			store := `{mode="durable",store="default"}`
			if w := m["mqttpersist_store_written_total"+store]; w < float64(n0) {
				t.Errorf("written_total %v before the kill, but %d were acknowledged before the scrape", w, n0)
			}
			calls, items := m["mqttpersist_store_batch_size_count"+store], m["mqttpersist_store_batch_size_sum"+store]
			t.Logf("ten publishers: %v messages in %v store calls (mean batch %.1f)", items, calls, items/max(calls, 1))
			if calls == 0 || items/calls <= 1 {
				t.Errorf("no group commit: %v messages in %v store calls", items, calls)
			}
			if len(acked) < 100 {
				t.Fatalf("only %d messages acknowledged before the kill", len(acked))
			}
			b2 := startBroker(t, "-store", storeURL)
			stored := storedPayloads(t, storeURL, "d/#")
			have := map[string]bool{}
			for _, s := range stored {
				have[s] = true
			}
			var lost []string
			for _, a := range acked {
				if !have[a] {
					lost = append(lost, a)
				}
			}
			if len(lost) > 0 {
				slices.Sort(lost)
				t.Fatalf("%d of %d acknowledged messages are not in the database: %v", len(lost), len(acked), head(lost))
			}
			t.Logf("%d acknowledged, %d stored (the rest were stored but not yet acknowledged at the kill)", len(acked), len(stored))
			b2.stop()
		})
	}
}

// TestOutboxLimit: with a small outbox and the database down, the
// configured overflow policy happens and is counted, and nothing else is
// lost: drop-oldest keeps the newest messages and counts the dropped ones;
// block refuses the publish that does not fit (an MQTT 5 PUBACK with an
// error reason) and keeps every one it acknowledged.
func TestOutboxLimit(t *testing.T) {
	for _, policy := range []string{"drop-oldest", "block"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			srv := testenv.StartPostgres(t)
			b := startBroker(t, "-store", srv.URL(), "-mode", "async", "-outbox", filepath.Join(t.TempDir(), "outbox"),
				"-outbox-bytes", "65536", "-overflow", policy, "-metrics", "127.0.0.1:0")
			store := `{mode="async",store="default"}`
			srv.Stop(t)
			pub := mqtttest.Dial(t, b.addr, "limit-pub", mqtttest.Options{Clean: true})
			var accepted []string
			for i := range 2000 {
				pl := fmt.Sprintf("l-%05d-%s", i, strings.Repeat("x", 100))
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := pub.PC.Publish(ctx, &paho.Publish{Topic: "l/x", Payload: []byte(pl), QoS: 1})
				cancel()
				if err != nil {
					if policy == "drop-oldest" {
						t.Fatalf("publish %d refused with drop-oldest: %v", i, err)
					}
					break
				}
				accepted = append(accepted, pl)
			}
			during := b.scrape(t)
			if during["mqttpersist_store_outbox_bytes"+store] > 65536 {
				t.Errorf("outbox holds %v bytes, over its limit of 65536", during["mqttpersist_store_outbox_bytes"+store])
			}
			srv.Start(t)
			after := waitMetric(t, b, "the outbox to empty", func(m map[string]float64) bool { return m["mqttpersist_store_queued"+store] == 0 })
			stored := storedPayloads(t, srv.URL(), "l/#")
			dropped := after["mqttpersist_store_dropped_total"+store]
			switch policy {
			case "drop-oldest":
				if dropped == 0 || int(dropped)+len(stored) != len(accepted) {
					t.Fatalf("dropped %v + stored %d != %d published", dropped, len(stored), len(accepted))
				}
				if d := exactlyOnce(stored, accepted[len(accepted)-len(stored):]); d != "" {
					t.Fatalf("drop-oldest did not keep the newest: %s", d)
				}
			case "block":
				if len(accepted) == 2000 {
					t.Fatal("every publish was accepted into a 64 KiB outbox")
				}
				if dropped != 0 {
					t.Errorf("block dropped %v", dropped)
				}
				if d := exactlyOnce(stored, accepted); d != "" {
					t.Fatalf("block: %s", d)
				}
				if after["mqttpersist_broker_failed_total"] == 0 {
					t.Errorf("the refused publish is not counted: %v", after["mqttpersist_broker_failed_total"])
				}
			}
			if after["mqttpersist_store_written_total"+store] != float64(len(stored)) {
				t.Errorf("written_total %v, stored %d", after["mqttpersist_store_written_total"+store], len(stored))
			}
			b.stop()
		})
	}
}
