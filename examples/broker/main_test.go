package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// The tests run the broker as a real process: a restart is a new process on
// the same database, as a user would do it.

var brokerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mqttpersist-broker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	brokerBin = filepath.Join(dir, "broker")
	if out, err := exec.Command("go", "build", "-o", brokerBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build broker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// broker is one running broker process.
type broker struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	stdout strings.Builder
	stderr strings.Builder
	done   chan error
}

// startBroker starts the broker with args on a free loopback port and
// waits until it listens; it is stopped at cleanup if still running.
func startBroker(t testing.TB, args ...string) *broker {
	t.Helper()
	return startBrokerWith(t, nil, args...)
}

// startBrokerWith is startBroker calling onStderr with all the broker
// wrote to stderr so far whenever it writes more (also before it listens).
func startBrokerWith(t testing.TB, onStderr func(string), args ...string) *broker {
	t.Helper()
	b := &broker{t: t, done: make(chan error, 1)}
	b.cmd = exec.Command(brokerBin, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	b.cmd.Dir = t.TempDir()
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.cmd.Stderr = writerFunc(func(p []byte) {
		b.mu.Lock()
		b.stderr.Write(p)
		text := b.stderr.String()
		b.mu.Unlock()
		if onStderr != nil {
			onStderr(text)
		}
	})
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			b.mu.Lock()
			b.stdout.WriteString(line + "\n")
			b.mu.Unlock()
			if _, a, ok := strings.Cut(line, " listening on "); ok {
				addr <- a
			}
		}
		b.done <- b.cmd.Wait()
	}()
	select {
	case b.addr = <-addr:
	case err := <-b.done:
		t.Fatalf("broker %v exited before listening: %v\nstdout:\n%s\nstderr:\n%s", args, err, b.out(), b.errOut())
	case <-time.After(60 * time.Second):
		b.cmd.Process.Kill()
		t.Fatalf("broker %v did not start listening in 60s\nstderr:\n%s", args, b.errOut())
	}
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func (b *broker) out() string    { b.mu.Lock(); defer b.mu.Unlock(); return b.stdout.String() }
func (b *broker) errOut() string { b.mu.Lock(); defer b.mu.Unlock(); return b.stderr.String() }

// stop sends SIGTERM and waits for a clean exit.
func (b *broker) stop() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.done:
		if err != nil {
			b.t.Fatalf("broker exited with %v after SIGTERM\nstderr:\n%s", err, b.errOut())
		}
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		b.t.Fatalf("broker did not stop within 30s of SIGTERM\nstderr:\n%s", b.errOut())
	}
	if !strings.Contains(b.out(), "mqttpersist broker: stopped") {
		b.t.Errorf("broker did not report a clean stop:\n%s", b.out())
	}
}

// eachSQLStore runs fn per SQL database: SQLite always, PostgreSQL and
// MariaDB from make services (failing in CI when they are missing).
func eachSQLStore(t *testing.T, fn func(t *testing.T, storeURL string)) {
	testenv.EachBackendParallel(t, testenv.SQLBackends(), fn)
}

// eachStore runs fn on every SQL database, on Redis and on MongoDB.
func eachStore(t *testing.T, fn func(t *testing.T, storeURL string)) {
	redisBackend := testenv.Backend[string]{Name: "redis", Open: redisURL}
	mongoBackend := testenv.Backend[string]{Name: "mongodb", Open: mongoURL}
	testenv.EachBackendParallel(t, append(testenv.SQLBackends(), redisBackend, mongoBackend), fn)
}

// redisURL is the test Redis with a fresh key prefix, whose keys are
// deleted at cleanup.
func redisURL(t testing.TB) string {
	base := testenv.RedisURL(t)
	prefix := testenv.FreshName("t") + ":mqtt"
	t.Cleanup(func() {
		opt, err := redis.ParseURL(base)
		if err != nil {
			return
		}
		rc := redis.NewClient(opt)
		defer rc.Close()
		ctx := context.Background()
		iter := rc.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "prefix=" + prefix
}

func isSQL(storeURL string) bool {
	return !strings.HasPrefix(storeURL, "redis") && !strings.HasPrefix(storeURL, "mongodb")
}

// query runs SQL on the broker's database, as a user checking the tables
// would, and returns the rows as text.
func query(t *testing.T, storeURL, q string, args ...any) [][]string {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), storeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.DB().Raw(q, args...).Rows()
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				row[i] = "NULL"
			case []byte:
				row[i] = string(v)
			default:
				row[i] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	return out
}

const (
	waitLong = 60 * time.Second
	quiet    = 1500 * time.Millisecond
)

var session = mqtttest.Options{Expiry: 3600}

// TestRestartDeliversOnce is the first case: a persistent
// subscriber goes offline, 100 QoS 1 messages are published, the broker is
// stopped and a new broker process starts on the same database; the
// subscriber reconnects without subscribing again and receives exactly
// those 100, in order, once, and nothing more on its next reconnect, and
// its stored subscription keeps working for new messages.
func TestRestartDeliversOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, storeURL string) {
		b1 := startBroker(t, "-store", storeURL, "-node", "node-a")
		sub := mqtttest.Dial(t, b1.addr, "sub", session)
		sub.Subscribe("t/#", 1)
		sub.Disconnect()

		pub := mqtttest.Dial(t, b1.addr, "pub", mqtttest.Options{Clean: true})
		want := mqtttest.Numbered("m", 100)
		for _, p := range want {
			pub.Publish("t/x", []byte(p), 1, false)
		}
		pub.Disconnect()
		b1.stop()

		b2 := startBroker(t, "-store", storeURL, "-node", "node-a")
		sub = mqtttest.Dial(t, b2.addr, "sub", session)
		got := sub.WaitFor(100, waitLong, quiet)
		if d := mqtttest.Diff(mqtttest.Payloads(got), want); d != "" {
			t.Fatalf("after restart: %s", d)
		}
		for _, p := range got {
			if p.QoS != 1 || p.Topic != "t/x" {
				t.Fatalf("message %q arrived as %s QoS %d, want t/x QoS 1", p.Payload, p.Topic, p.QoS)
			}
		}
		sub.Disconnect()

		sub = mqtttest.Dial(t, b2.addr, "sub", session)
		pub = mqtttest.Dial(t, b2.addr, "pub", mqtttest.Options{Clean: true})
		pub.Publish("t/y", []byte("after"), 1, false)
		got = sub.WaitFor(1, waitLong, quiet)
		if d := mqtttest.Diff(mqtttest.Payloads(got), []string{"after"}); d != "" {
			t.Fatalf("next reconnect (stored subscription, no re-subscribe): %s", d)
		}
	})
}

// TestSeedRows: the tables look as the seeds show them.
func TestSeedRows(t *testing.T) {
	eachSQLStore(t, func(t *testing.T, storeURL string) {
		b := startBroker(t, "-store", storeURL, "-node", "emqx@127.0.0.1")
		c := mqtttest.Dial(t, b.addr, "test", session)
		c.Subscribe("test_topic1", 1)
		c.Subscribe("test_topic2", 2)
		c.Publish("hello", []byte("hello"), 1, false)
		c.Publish("retain", []byte("www"), 1, true)

		rows := query(t, storeURL, "select clientid, state, node, offline_at from mqtt_client where clientid = 'test'")
		if len(rows) != 1 || rows[0][1] != "1" || rows[0][2] != "emqx@127.0.0.1" || rows[0][3] != "NULL" {
			t.Errorf("online client row = %v, want [test 1 emqx@127.0.0.1 NULL]", rows)
		}
		rows = query(t, storeURL, "select topic, qos from mqtt_sub where clientid = 'test' order by topic")
		if fmt.Sprint(rows) != "[[test_topic1 1] [test_topic2 2]]" {
			t.Errorf("mqtt_sub rows = %v", rows)
		}
		rows = query(t, storeURL, "select topic, sender, qos, retain, payload from mqtt_msg where sender = 'test' and topic = 'hello'")
		if fmt.Sprint(rows) != "[[hello test 1 0 hello]]" {
			t.Errorf("mqtt_msg rows = %v", rows)
		}
		rows = query(t, storeURL, "select topic, sender, qos, payload from mqtt_retain where topic = 'retain'")
		if fmt.Sprint(rows) != "[[retain test 1 www]]" {
			t.Errorf("mqtt_retain rows = %v", rows)
		}
		if rows := query(t, storeURL, "select count(*) from mqtt_msg where arrived is null"); rows[0][0] != "0" {
			t.Errorf("%s messages without arrival time", rows[0][0])
		}
		c.Disconnect()
		deadline := time.Now().Add(10 * time.Second)
		for {
			rows = query(t, storeURL, "select state, online_at is not null, offline_at is not null from mqtt_client where clientid = 'test'")
			if len(rows) == 1 && rows[0][0] == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("offline client row = %v, want state 0", rows)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if rows[0][1] == "0" || rows[0][1] == "false" || rows[0][2] == "0" || rows[0][2] == "false" {
			t.Errorf("offline client row (state, has online_at, has offline_at) = %v, want both times", rows)
		}
	})
}

// TestRetainedSurvivesRestart: retained messages come back after a restart;
// an empty retained publish deletes the stored one.
func TestRetainedSurvivesRestart(t *testing.T) {
	eachStore(t, func(t *testing.T, storeURL string) {
		b := startBroker(t, "-store", storeURL)
		p := mqtttest.Dial(t, b.addr, "pub", mqtttest.Options{Clean: true})
		p.Publish("status/a", []byte("on"), 1, true)
		p.Publish("status/b", []byte("off"), 1, true)
		p.Publish("status/b", nil, 1, true) // deletes
		p.Disconnect()
		b.stop()

		b = startBroker(t, "-store", storeURL)
		s := mqtttest.Dial(t, b.addr, "reader", mqtttest.Options{Clean: true})
		s.Subscribe("status/#", 1)
		got := s.WaitFor(1, waitLong, quiet)
		if d := mqtttest.Diff(mqtttest.Payloads(got), []string{"on"}); d != "" || !got[0].Retain {
			t.Fatalf("retained after restart: %s (retain flag %v)", d, got[0].Retain)
		}
		if !isSQL(storeURL) {
			return
		}
		if rows := query(t, storeURL, "select topic from mqtt_retain order by topic"); fmt.Sprint(rows) != "[[status/a]]" {
			t.Errorf("mqtt_retain holds %v, want only status/a", rows)
		}
	})
}

// TestTwoNodes: two broker processes on one database behave as one broker:
// a session that went offline on node A gets, on node B, what was
// published on node B, once.
func TestTwoNodes(t *testing.T) {
	eachStore(t, func(t *testing.T, storeURL string) {
		a := startBroker(t, "-store", storeURL, "-node", "a")
		b := startBroker(t, "-store", storeURL, "-node", "b")
		sub := mqtttest.Dial(t, a.addr, "roamer", session)
		sub.Subscribe("fleet/+/pos", 1)
		sub.Disconnect()

		pub := mqtttest.Dial(t, b.addr, "truck", mqtttest.Options{Clean: true})
		want := mqtttest.Numbered("p", 20)
		for _, p := range want {
			pub.Publish("fleet/7/pos", []byte(p), 1, false)
		}
		sub = mqtttest.Dial(t, b.addr, "roamer", session)
		got := sub.WaitFor(len(want), waitLong, quiet)
		if d := mqtttest.Diff(mqtttest.Payloads(got), want); d != "" {
			t.Fatalf("on node b: %s", d)
		}
		if !isSQL(storeURL) {
			return
		}
		if rows := query(t, storeURL, "select node, state from mqtt_client where clientid = 'roamer'"); fmt.Sprint(rows) != "[[b 1]]" {
			t.Errorf("mqtt_client row = %v, want [[b 1]]", rows)
		}
	})
}

// TestHostileNames: client IDs and topics with quotes, ';', unicode and
// CR/LF are data: they round-trip through the database and a restart.
func TestHostileNames(t *testing.T) {
	eachStore(t, func(t *testing.T, storeURL string) {
		id := "a'; DROP TABLE mqtt_msg; -- 客户"
		topics := []string{"q'uo\"te/;", "传感器/温度", "x\r\nFLUSHALL"}
		b := startBroker(t, "-store", storeURL)
		sub := mqtttest.Dial(t, b.addr, id, session)
		for _, tp := range topics {
			sub.Subscribe(tp, 1)
		}
		sub.Disconnect()
		pub := mqtttest.Dial(t, b.addr, "pub\"'", mqtttest.Options{Clean: true})
		for _, tp := range topics {
			pub.Publish(tp, []byte(tp), 1, false)
		}
		pub.Disconnect()
		b.stop()

		b = startBroker(t, "-store", storeURL)
		sub = mqtttest.Dial(t, b.addr, id, session)
		got := sub.WaitFor(len(topics), waitLong, quiet)
		if d := mqtttest.Diff(mqtttest.Sorted(mqtttest.Payloads(got)), mqtttest.Sorted(topics)); d != "" {
			t.Fatalf("after restart: %s", d)
		}
		for _, p := range got {
			if p.Topic != string(p.Payload) {
				t.Errorf("message for %q arrived on topic %q", p.Payload, p.Topic)
			}
		}
		if !isSQL(storeURL) {
			return
		}
		if rows := query(t, storeURL, "select count(*) from mqtt_msg"); rows[0][0] != "3" {
			t.Errorf("mqtt_msg has %s rows, want 3", rows[0][0])
		}
	})
}

// TestQueue: messages to queue/… published before anyone subscribed go to
// the first consumer; two consumers that subscribe at once never both get
// the same message, and none is lost.
func TestQueue(t *testing.T) {
	eachStore(t, func(t *testing.T, storeURL string) {
		b := startBroker(t, "-store", storeURL)
		pub := mqtttest.Dial(t, b.addr, "producer", mqtttest.Options{Clean: true})
		early := mqtttest.Numbered("early", 5)
		for _, p := range early {
			pub.Publish("queue/jobs", []byte(p), 1, false)
		}
		first := mqtttest.Dial(t, b.addr, "first", session)
		first.Subscribe("queue/jobs", 1)
		got := first.WaitFor(len(early), waitLong, quiet)
		if d := mqtttest.Diff(mqtttest.Payloads(got), early); d != "" {
			t.Fatalf("first consumer: %s", d)
		}
		first.Disconnect()

		batch := mqtttest.Numbered("job", 200)
		for _, p := range batch {
			pub.Publish("queue/work", []byte(p), 1, false)
		}
		var c1, c2 *mqtttest.Client
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); c1 = mqtttest.Dial(t, b.addr, "w1", session); c1.Subscribe("queue/work", 1) }()
		go func() { defer wg.Done(); c2 = mqtttest.Dial(t, b.addr, "w2", session); c2.Subscribe("queue/work", 1) }()
		wg.Wait()
		deadline := time.Now().Add(waitLong)
		for len(c1.Received())+len(c2.Received()) < len(batch) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(quiet)
		all := append(mqtttest.Payloads(c1.Received()), mqtttest.Payloads(c2.Received())...)
		if d := mqtttest.Diff(mqtttest.Sorted(all), mqtttest.Sorted(batch)); d != "" {
			t.Fatalf("two consumers (w1 got %d, w2 got %d): %s", len(c1.Received()), len(c2.Received()), d)
		}
	})
}

// TestBadFlags: a bad flag, -store URL or -config file stops the broker at start
// with a message that names the bad value.
func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown scheme", []string{"-store", "redix://localhost"}, []string{`unknown scheme "redix"`}},
		{"not a URL", []string{"-store", "localhost"}, []string{`"localhost" is not a store URL`}},
		{"unreachable", []string{"-store", "postgres://u:secret@127.0.0.1:1/db"}, []string{"127.0.0.1:1", "u:xxxxx@"}},
		{"missing config", []string{"-config", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml"}},
		{"typo in config", []string{"-config", write("typo.yaml", "rules:\n  - name: a\n    filtr: x\n")}, []string{"line 3", "filtr"}},
		{"bad filter", []string{"-config", write("filter.yaml", "rules:\n  - name: sensors\n    filter: a/#/b\n"), "-store", "sqlite://" + filepath.Join(dir, "x.db")}, []string{`"sensors"`, `level 1 "#"`}},
		{"bad mode", []string{"-config", write("mode.yaml", "rules:\n  - name: m\n    mode: broadcast\n"), "-store", "sqlite://" + filepath.Join(dir, "y.db")}, []string{`rule 0 (m)`, `"broadcast"`}},
		{"unknown store", []string{"-config", write("store.yaml", "stores: {main: \"sqlite://"+filepath.Join(dir, "z.db")+"\"}\nrules:\n  - name: r\n    store: other\n")}, []string{`unknown store "other"`}},
		{"bad duration", []string{"-config", write("dur.yaml", "rules:\n  - name: d\n    expiry: soon\n")}, []string{`bad duration "soon"`}},
		{"bad write mode", []string{"-mode", "fast"}, []string{"-mode", `"fast"`}},
		{"bad write mode in config", []string{"-config", write("wmode.yaml", "mode: later\n")}, []string{"wmode.yaml: mode", `"later"`}},
		{"bad overflow", []string{"-mode", "async", "-overflow", "x"}, []string{"-overflow", `"x"`}},
		{"bad overflow in config", []string{"-config", write("over.yaml", "overflow: spill\n")}, []string{"over.yaml: overflow", `"spill"`}},
		{"negative outbox bytes in config", []string{"-config", write("bytes.yaml", "outbox_bytes: -5\n")}, []string{"bytes.yaml: outbox_bytes -5"}},
		{"flag wins over config", []string{"-config", write("win.yaml", "mode: async\n"), "-mode", "soon"}, []string{"-mode", `"soon"`}},
		{"negative outbox bytes", []string{"-outbox-bytes", "-1"}, []string{"-outbox-bytes -1"}},
		{"outbox bytes not a number", []string{"-outbox-bytes", "lots"}, []string{`"lots"`, "-outbox-bytes"}},
		{"bad metrics address", []string{"-metrics", "nohost"}, []string{"-metrics nohost", "missing port"}},
		{"metrics port in use", []string{"-metrics", busy}, []string{"-metrics " + busy}},
		{"store name not a directory", []string{"-mode", "async", "-config", write("name.yaml", "stores: {\"../up\": \"sqlite://"+filepath.Join(dir, "n.db")+"\"}\n")}, []string{`"../up"`}},
	}
	for _, tt := range tests {
		cmd := exec.Command(brokerBin, append([]string{"-listen", "127.0.0.1:0"}, tt.args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s: broker started with %v", tt.name, tt.args)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: output does not name %q:\n%s", tt.name, w, out)
			}
		}
		if strings.Contains(string(out), "secret") {
			t.Errorf("%s: output shows the password:\n%s", tt.name, out)
		}
	}
}

// TestDefaultStore: with no flags the broker persists to ./data/mqtt.db.
func TestDefaultStore(t *testing.T) {
	b := startBroker(t)
	if !strings.Contains(b.out(), "store default: sqlite://./data/mqtt.db") {
		t.Errorf("broker does not say where it stores:\n%s", b.out())
	}
	c := mqtttest.Dial(t, b.addr, "c", mqtttest.Options{Clean: true})
	c.Publish("a", []byte("x"), 1, true)
	b.stop()
	path := filepath.Join(b.cmd.Dir, "data", "mqtt.db")
	if rows := query(t, "sqlite://"+path, "select topic, payload from mqtt_retain"); fmt.Sprint(rows) != "[[a x]]" {
		t.Errorf("%s holds %v", path, rows)
	}
}

// TestLoadNothingDropped: 10 publishers × 2,000 QoS 1 messages to one
// persistent QoS 1 subscriber, with persistence on, deliver all 20,000
// once. (A hook that slows mochi's PUBACK path makes mochi drop QoS 1
// messages at its inflight limit with only a log line.)
func TestLoadNothingDropped(t *testing.T) {
	eachStore(t, func(t *testing.T, storeURL string) {
		b := startBroker(t, "-store", storeURL)
		subID := testenv.FreshName("load-")
		per := 2000
		if strings.HasPrefix(storeURL, "mongodb") {
			per = 500 // FerretDB takes a few hundred messages a second (see BENCHMARKS.md)
		}
		r, err := mqtttest.Load(t.Context(), mqtttest.LoadOptions{Addr: b.addr, Publishers: 10, Messages: per, QoS: 1, Payload: 64, Subscriber: subID, Timeout: 90 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v", storeURL[:strings.Index(storeURL, ":")], r)
		if total := 10 * per; r.Published != total || r.Delivered != total || r.Missing != 0 || r.Duplicates != 0 {
			// Tell a stall from a loss: what does the store still hand the
			// subscriber when it reconnects? Then the broker's counters.
			again := mqtttest.Dial(t, b.addr, subID, session)
			time.Sleep(20 * time.Second)
			more := len(again.Received())
			again.Disconnect()
			b.stop()
			t.Fatalf("load through the broker: %v; on reconnect the subscriber got %d more\nbroker:\n%s\nbroker log:\n%s",
				r, more, tail(b.out(), 3), tail(b.errOut(), 30))
		}
		b.stop()
		if strings.Contains(b.errOut(), "quota reached") {
			t.Errorf("mochi dropped messages at its inflight limit:\n%s", tail(b.errOut(), 10))
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// BenchmarkThroughput measures publish→deliver throughput of QoS 1
// messages (10 publishers × 2,000 to one persistent subscriber) through the
// broker process with no persistence, SQLite and PostgreSQL, in one run,
// and reports each as a ratio to no persistence. Run it with -benchtime=1x.
func BenchmarkThroughput(b *testing.B) {
	stores := []struct{ name, url string }{
		{"none", "none"},
		{"sqlite", "sqlite://" + filepath.Join(b.TempDir(), "mqtt.db")},
		{"postgres", testenv.PostgresURL(b)},
	}
	rates := map[string]float64{}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			var sum float64
			for range b.N {
				br := startBroker(b, "-store", s.url)
				r, err := mqtttest.Load(context.Background(), mqtttest.LoadOptions{Addr: br.addr, Publishers: 10, Messages: 2000, QoS: 1, Payload: 64})
				br.stop()
				if err != nil {
					b.Fatal(err)
				}
				if r.Missing != 0 || r.Duplicates != 0 {
					b.Fatalf("%s: %v", s.name, r)
				}
				sum += r.Rate()
			}
			rates[s.name] = sum / float64(b.N)
			b.ReportMetric(rates[s.name], "msgs/s")
		})
	}
	if base := rates["none"]; base > 0 {
		for _, s := range stores[1:] {
			b.Logf("%s: %.0f msgs/s = %.2f × no persistence (%.0f msgs/s)", s.name, rates[s.name], rates[s.name]/base, base)
		}
	}
}

// TestSeedKeysRedis: on Redis, the seeds' own look-ups show our data, and a
// SUBSCRIBE mqtt_channel client sees the subscribe event.
func TestSeedKeysRedis(t *testing.T) {
	u := redisURL(t)
	prefix := u[strings.Index(u, "prefix=")+len("prefix="):]
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx := t.Context()
	events := rc.Subscribe(ctx, "mqtt_channel")
	defer events.Close()
	if _, err := events.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	b := startBroker(t, "-store", u, "-node", "emqx@127.0.0.1")
	c := mqtttest.Dial(t, b.addr, "test", session)
	c.Subscribe("topic0", 1)
	c.Publish("retain", []byte("www"), 1, true)

	// Other tests' brokers on this Redis use the channel too: their
	// clients' events are passed over.
	want := `{"type":"subscribe","topic":"topic0","clientid":"test","qos":1}`
	var seen []string
	deadline := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case m := <-events.Channel():
			if strings.Contains(m.Payload, `"topic":"topic0","clientid":"test"`) {
				if m.Payload != want {
					t.Errorf("mqtt_channel got %s, want %s", m.Payload, want)
				}
				found = true
			}
			seen = append(seen, m.Payload)
		case <-deadline:
			t.Errorf("no subscribe event of client test on mqtt_channel in 10s (saw %q)", seen)
			found = true
		}
	}
	cl := rc.HGetAll(ctx, prefix+":client:test").Val()
	if cl["state"] != "1" || cl["node"] != "emqx@127.0.0.1" || cl["online_at"] == "" {
		t.Errorf("HGETALL %s:client:test = %v", prefix, cl)
	}
	if sub := rc.HGetAll(ctx, prefix+":sub:test").Val(); fmt.Sprint(sub) != "map[topic0:1]" {
		t.Errorf("HGETALL %s:sub:test = %v", prefix, sub)
	}
	ret := rc.HGetAll(ctx, prefix+":retain:retain").Val()
	if ret["payload"] != "www" || ret["from"] != "test" || ret["topic"] != "retain" {
		t.Errorf("HGETALL %s:retain:retain = %v", prefix, ret)
	}
}

// TestMosquittoCLI drives the broker with the Mosquitto command-line
// clients (MQTT 3.1.1) through testdata/mosquitto.sh: a persistent
// subscriber misses ten messages, the broker restarts, the subscriber comes
// back without subscribing and gets each once, and a new reader sees the
// retained message but not the deleted one.
func TestMosquittoCLI(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("MQTTPERSIST_REQUIRE_SERVERS") == "1" {
			t.Fatalf("mosquitto_sub not found: run make services (it installs mosquitto-clients)")
		}
		t.Skip("mosquitto_sub not found: run make services (it installs mosquitto-clients)")
	}
	script, _ := filepath.Abs("testdata/mosquitto.sh")
	step := func(b *broker, name string, more ...string) string {
		t.Helper()
		host, port, _ := strings.Cut(b.addr, ":")
		cmd := exec.Command("bash", append([]string{script, name, host, port}, more...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr // mosquitto_sub says "Timed out" there
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mosquitto.sh %s: %v\n%s%s", name, err, out, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	storeURL := "sqlite://" + filepath.Join(t.TempDir(), "mqtt.db")
	b := startBroker(t, "-store", storeURL)
	step(b, "subscribe")
	step(b, "publish")
	b.stop()

	b = startBroker(t, "-store", storeURL)
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("cli/x m%d", i))
	}
	// The retained publishes were published while it was away: it gets
	// them as messages (the delete as an empty one), as MQTT says.
	want = append(want, "cli/gone bye", "cli/gone ", "cli/state on")
	got := strings.Split(step(b, "receive", "10"), "\n")
	if d := mqtttest.Diff(got, want); d != "" {
		t.Errorf("persistent subscriber after restart: %s", d)
	}
	if again := step(b, "receive"); again != "" {
		t.Errorf("second reconnect got more:\n%s\nbroker log:\n%s", again, tail(b.errOut(), 30))
	}
	if ret := step(b, "retained"); ret != "cli/state on 1" {
		t.Errorf("new reader got %q, want only the retained cli/state", ret)
	}
}

// scrape fetches the broker's /metrics and returns each sample line as
// `name{labels}` → value.
func (b *broker) scrape(t testing.TB) map[string]float64 {
	t.Helper()
	_, rest, ok := strings.Cut(b.out(), "metrics on ")
	if !ok {
		t.Fatalf("broker does not say where it serves metrics:\n%s", b.out())
	}
	url, _, _ := strings.Cut(rest, "\n")
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%s: bad sample %q", url, line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestAsyncMetrics: with -mode async (over a config that says durable) and
// -metrics, N QoS 1 messages to an offline persistent subscriber go
// through the outbox into SQLite, and /metrics shows it: the store wrote N,
// nothing is queued, the rule matched N. Then M more are published and the
// broker is stopped at once: shutdown drains the outbox into the database.
// A new broker process on the same database and outbox delivers the N+M
// to the subscriber, once, in order.
func TestAsyncMetrics(t *testing.T) {
	const n, m = 200, 100
	dir := t.TempDir()
	storeURL := "sqlite://" + filepath.Join(dir, "mqtt.db")
	outbox := filepath.Join(dir, "outbox")
	config := filepath.Join(dir, "broker.yaml")
	// The sessions rule keeps client state and subscriptions; telemetry,
	// on its own, counts only the messages (and later their acks).
	yaml := "mode: durable\noutbox: " + outbox + "\nrules:\n" +
		"  - name: sessions\n    events: [client.connected, session.subscribed]\n" +
		"  - name: telemetry\n    filter: t/#\n    events: [message.publish, message.acked, message.fetch, message.retain]\n"
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-store", storeURL, "-config", config, "-mode", "async", "-metrics", "127.0.0.1:0"}
	b1 := startBroker(t, args...)
	if want := "store default: " + storeURL + " (async, outbox " + filepath.Join(outbox, "default") + ")"; !strings.Contains(b1.out(), want) {
		t.Errorf("startup lines do not say %q:\n%s", want, b1.out())
	}
	sub := mqtttest.Dial(t, b1.addr, "sub", session)
	sub.Subscribe("t/#", 1)
	sub.Disconnect()

	pub := mqtttest.Dial(t, b1.addr, "pub", mqtttest.Options{Clean: true})
	want := mqtttest.Numbered("m", n+m)
	for _, p := range want[:n] {
		pub.Publish("t/x", []byte(p), 1, false)
	}
	const store = `{mode="async",store="default"}`
	var got map[string]float64
	deadline := time.Now().Add(waitLong)
	for {
		got = b1.scrape(t)
		if got["mqttpersist_store_written_total"+store] >= n && got["mqttpersist_store_queued"+store] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox was not written in %v: written %v, queued %v",
				waitLong, got["mqttpersist_store_written_total"+store], got["mqttpersist_store_queued"+store])
		}
		time.Sleep(100 * time.Millisecond)
	}
	for key, want := range map[string]float64{
		"mqttpersist_store_written_total" + store:          n,
		"mqttpersist_store_queued" + store:                 0,
		"mqttpersist_store_outbox_bytes" + store:           0,
		"mqttpersist_store_failed_total" + store:           0,
		"mqttpersist_store_dropped_total" + store:          0,
		"mqttpersist_store_up" + store:                     1,
		"mqttpersist_store_batch_size_sum" + store:         n,
		`mqttpersist_rule_matched_total{rule="telemetry"}`: n,
		`mqttpersist_rule_written_total{rule="telemetry"}`: n,
		`mqttpersist_rule_failed_total{rule="telemetry"}`:  0,
		"mqttpersist_broker_stored_total":                  n,
		"mqttpersist_broker_failed_total":                  0,
	} {
		if v, ok := got[key]; !ok {
			t.Errorf("/metrics has no %s", key)
		} else if v != want {
			t.Errorf("%s = %v, want %v", key, v, want)
		}
	}
	if c := got["mqttpersist_store_batch_size_count"+store]; c < 1 || c > n {
		t.Errorf("%v store calls for %d messages", c, n)
	}
	if got["mqttpersist_store_write_seconds_count"+store] != got["mqttpersist_store_batch_size_count"+store] {
		t.Errorf("write_seconds_count %v != batch_size_count %v",
			got["mqttpersist_store_write_seconds_count"+store], got["mqttpersist_store_batch_size_count"+store])
	}
	if got[`mqttpersist_rule_matched_total{rule="sessions"}`] < 3 {
		t.Errorf("sessions rule matched %v (connects and a subscription)", got[`mqttpersist_rule_matched_total{rule="sessions"}`])
	}

	// M more, then stop at once: Close drains the outbox into the database.
	for _, p := range want[n:] {
		pub.Publish("t/x", []byte(p), 1, false)
	}
	pub.Disconnect()
	b1.stop()
	if rows := query(t, storeURL, "select count(*) from mqtt_msg"); rows[0][0] != strconv.Itoa(n+m) {
		t.Errorf("after shutdown mqtt_msg has %s rows, want %d (the outbox drains on shutdown)\nbroker log:\n%s", rows[0][0], n+m, tail(b1.errOut(), 10))
	}
	if strings.Contains(b1.errOut(), "left in the outbox") {
		t.Errorf("shutdown left records in the outbox:\n%s", tail(b1.errOut(), 10))
	}

	b2 := startBroker(t, args...)
	sub = mqtttest.Dial(t, b2.addr, "sub", session)
	msgs := sub.WaitFor(n+m, waitLong, quiet)
	if d := mqtttest.Diff(mqtttest.Payloads(msgs), want); d != "" {
		t.Fatalf("after restart: %s", d)
	}
	got = b2.scrape(t)
	if v := got["mqttpersist_broker_replayed_total"]; v != n+m {
		t.Errorf("mqttpersist_broker_replayed_total = %v, want %d", v, n+m)
	}
	if v := got["mqttpersist_store_queued"+store]; v != 0 {
		t.Errorf("after restart mqttpersist_store_queued = %v, want 0", v)
	}
	sub.Disconnect()
	b2.stop()
}
