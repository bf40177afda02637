package persist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// sqlite opens a migrated SQLite store in a fresh directory.
func sqlite(t *testing.T) *sqlstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "mqtt.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// outage puts a real store behind a switch: while down, writes fail with a
// retryable connection error before reaching the store, as they do when a
// database server is stopped.
type outage struct {
	persist.Store
	down  atomic.Bool
	calls atomic.Int64
}

func (o *outage) check(op string) error {
	o.calls.Add(1)
	if o.down.Load() {
		return persist.Wrap("outage", op, persist.ErrUnavailable, syscall.ECONNREFUSED, true)
	}
	return nil
}

func (o *outage) Publish(ctx context.Context, msgs ...*persist.Message) error {
	if err := o.check("Publish"); err != nil {
		return err
	}
	return o.Store.Publish(ctx, msgs...)
}

func (o *outage) Retain(ctx context.Context, m *persist.Message) error {
	if err := o.check("Retain"); err != nil {
		return err
	}
	return o.Store.Retain(ctx, m)
}

func (o *outage) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	if err := o.check("Acked"); err != nil {
		return err
	}
	return o.Store.Acked(ctx, clientID, acks...)
}

func (o *outage) Connected(ctx context.Context, c *persist.Client) error {
	if err := o.check("Connected"); err != nil {
		return err
	}
	return o.Store.Connected(ctx, c)
}

func (o *outage) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	if err := o.check("Subscribed"); err != nil {
		return err
	}
	return o.Store.Subscribed(ctx, clientID, subs, removed)
}

func pipeline(t *testing.T, s persist.Store, o persist.PipelineOptions) *persist.Pipeline {
	t.Helper()
	p, err := persist.NewPipeline(s, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// stored returns the payloads of every fanout message on topics under
// prefix in s, in ID order.
func stored(t *testing.T, s persist.Store, prefix string) []string {
	t.Helper()
	msgs, err := s.FetchOffline(context.Background(), "reader", prefix+"/#", persist.Fetch{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

func publishAll(t *testing.T, p persist.Store, topic string, payloads []string) {
	t.Helper()
	for _, pl := range payloads {
		if err := p.Publish(context.Background(), &persist.Message{Topic: topic, Payload: []byte(pl), QoS: 1}); err != nil {
			t.Fatalf("publish %s: %v", pl, err)
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sameStrings(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// Durable: every Publish returns once the store has the message, and
// concurrent publishers share store calls (group commit).
func TestPipelineDurableGroupCommit(t *testing.T) {
	s := sqlite(t)
	// A minute per store call: a loaded machine (SQLite under -race)
	// makes a call slow, which this test is not about.
	p := pipeline(t, s, persist.PipelineOptions{Name: "sqlite", Timeout: time.Minute})
	const writers, each = 40, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := &persist.Message{Topic: fmt.Sprintf("g/%d", w), Payload: []byte(fmt.Sprint(i)), QoS: 1}
				if err := p.Publish(context.Background(), m); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				// Stored before Publish returned.
				if got, err := s.FetchOffline(context.Background(), "r", m.Topic, persist.Fetch{}); err != nil || len(got) != i+1 {
					t.Errorf("after Publish of %s %d: %d stored, %v", m.Topic, i, len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := p.Stats()
	if got := len(stored(t, s, "g")); got != writers*each {
		t.Fatalf("stored %d of %d", got, writers*each)
	}
	if st.Written != writers*each || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Batch.Count >= writers*each || st.Batch.Mean() <= 1 {
		t.Errorf("%d store calls for %d messages (mean batch %.2f): no group commit", st.Batch.Count, writers*each, st.Batch.Mean())
	}
}

// Durable: a retryable error is retried within Timeout.
func TestPipelineDurableRetries(t *testing.T) {
	o := &outage{Store: sqlite(t)}
	p := pipeline(t, o, persist.PipelineOptions{MinBackoff: 10 * time.Millisecond})
	o.down.Store(true)
	time.AfterFunc(200*time.Millisecond, func() { o.down.Store(false) })
	publishAll(t, p, "d/x", []string{"after-outage"})
	if got := stored(t, o, "d"); !sameStrings(got, []string{"after-outage"}) {
		t.Fatalf("stored %v", got)
	}
	if st := p.Stats(); st.Retried == 0 || st.Written != 1 || !st.Up {
		t.Errorf("stats %+v", st)
	}
	// Past Timeout the caller gets the error.
	o.down.Store(true)
	p2 := pipeline(t, o, persist.PipelineOptions{Timeout: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond})
	err := p2.Publish(context.Background(), &persist.Message{Topic: "d/x", QoS: 1})
	if !errors.Is(err, persist.ErrUnavailable) {
		t.Fatalf("publish while down: %v", err)
	}
	if st := p2.Stats(); st.Failed != 1 || st.Up {
		t.Errorf("stats %+v", st)
	}
}

// Async: writes return at once and reach the store in order; Close
// drains; FetchOffline sees what was published before it.
func TestPipelineAsync(t *testing.T) {
	s := sqlite(t)
	p := pipeline(t, s, persist.PipelineOptions{Mode: persist.Async, Outbox: t.TempDir(), MaxBatch: 64})
	want := numbered("a", 500)
	publishAll(t, p, "a/x", want)
	if got := stored(t, p, "a"); !sameStrings(got, want) {
		t.Fatalf("FetchOffline through the pipeline right after Publish: %d messages, want %d", len(got), len(want))
	}
	ret := &persist.Message{Topic: "a/r", Payload: []byte("kept"), QoS: 1}
	if err := p.Retain(context.Background(), ret); err != nil {
		t.Fatal(err)
	}
	msgs, err := p.FetchOffline(context.Background(), "reader", "a/#", persist.Fetch{})
	if err != nil {
		t.Fatal(err)
	}
	acks := make([]persist.Ack, len(msgs))
	for i, m := range msgs {
		acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
	}
	if err := p.Acked(context.Background(), "reader", acks...); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, s, "a"); len(got) != 0 {
		// The acks went through the outbox, after the messages.
		t.Errorf("after the acks: %d messages still unacked", len(got))
	}
	r, err := s.Retained(context.Background(), "a/r")
	if err != nil || len(r) != 1 || string(r[0].Payload) != "kept" {
		t.Fatalf("retained: %v %v", r, err)
	}
	st := p.Stats()
	if st.Written != 1001 || st.Queued != 0 || st.OutboxBytes != 0 { // 500 messages, a retained one, 500 acks
		t.Errorf("stats %+v", st)
	}
	if st.Batch.Count >= 500 {
		t.Errorf("%d store calls for 1001 items: no batching", st.Batch.Count)
	}
	if err := p.Publish(context.Background(), &persist.Message{Topic: "a/x"}); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("publish after Close: %v", err)
	}
}

// Async while the store is down: publishers are not held, the records wait
// in the outbox, are retried, and are written once, in order, when the
// store is back.
func TestPipelineAsyncOutage(t *testing.T) {
	o := &outage{Store: sqlite(t)}
	p := pipeline(t, o, persist.PipelineOptions{Mode: persist.Async, Outbox: t.TempDir(), MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	o.down.Store(true)
	want := numbered("o", 300)
	start := time.Now()
	publishAll(t, p, "o/x", want)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("publishing while the store was down took %v", d)
	}
	eventually(t, "the outage to be noticed", func() bool { st := p.Stats(); return !st.Up && st.Retried > 0 })
	if st := p.Stats(); st.Queued != 300 || st.OutboxBytes == 0 {
		t.Fatalf("while down: %+v", st)
	}
	o.down.Store(false)
	eventually(t, "the outbox to empty", func() bool { return p.Stats().Queued == 0 })
	if got := stored(t, o, "o"); !sameStrings(got, want) {
		t.Fatalf("after the outage: %d messages stored; want the %d in order", len(got), len(want))
	}
	if st := p.Stats(); st.Written != 300 || !st.Up || st.OutboxBytes != 0 {
		t.Errorf("after: %+v", st)
	}
}

// The outbox survives a restart: records a closed pipeline could not write
// are written by the next one on the same directory, once, even when the
// last record was torn by a crash.
func TestPipelineOutboxSurvivesRestart(t *testing.T) {
	o := &outage{Store: sqlite(t)}
	dir := t.TempDir()
	opts := persist.PipelineOptions{Mode: persist.Async, Outbox: dir, MinBackoff: 5 * time.Millisecond, Drain: 50 * time.Millisecond}
	p1, err := persist.NewPipeline(o, &opts)
	if err != nil {
		t.Fatal(err)
	}
	o.down.Store(true)
	first := numbered("r1", 100)
	publishAll(t, p1, "r/x", first)
	if err := p1.Close(); err != nil {
		t.Fatalf("close with records left in an on-disk outbox: %v", err)
	}
	// A crash in the middle of a write leaves a torn record at the end.
	segs, _ := filepath.Glob(filepath.Join(dir, "0*"))
	if len(segs) == 0 {
		t.Fatal("no outbox segment file")
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0xff, 0x01, '{'})
	f.Close()

	o.down.Store(false)
	opts.Drain = 0 // the default: as long as the store takes
	p2 := pipeline(t, o, opts)
	if st := p2.Stats(); st.Queued > 100 {
		t.Fatalf("reopened outbox holds %d records; want at most 100", st.Queued)
	}
	second := numbered("r2", 50)
	publishAll(t, p2, "r/x", second)
	if err := p2.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, o, "r"), append(first, second...); !sameStrings(got, want) {
		t.Fatalf("after restart: %d messages; want %d (the first run's, then the second's)", len(got), len(want))
	}
	// A third run has nothing to replay.
	p3 := pipeline(t, o, opts)
	if st := p3.Stats(); st.Queued != 0 {
		t.Errorf("third run: %d records left", st.Queued)
	}
}

// A full outbox blocks publishers (until their context ends), or drops the
// oldest records and counts them; nothing else is lost.
func TestPipelineOverflow(t *testing.T) {
	t.Run("block", func(t *testing.T) {
		o := &outage{Store: sqlite(t)}
		p := pipeline(t, o, persist.PipelineOptions{Mode: persist.Async, Outbox: t.TempDir(), OutboxBytes: 8 << 10, MinBackoff: 5 * time.Millisecond})
		o.down.Store(true)
		var accepted []string
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			pl := fmt.Sprintf("b-%04d", i)
			err := p.Publish(ctx, &persist.Message{Topic: "b/x", Payload: []byte(pl), QoS: 1})
			cancel()
			if err != nil {
				if !errors.Is(err, persist.ErrUnavailable) || !strings.Contains(err.Error(), "outbox full") {
					t.Fatalf("publish into a full outbox: %v", err)
				}
				break
			}
			accepted = append(accepted, pl)
		}
		if len(accepted) == 0 || p.Stats().OutboxBytes > 8<<10 {
			t.Fatalf("accepted %d; stats %+v", len(accepted), p.Stats())
		}
		o.down.Store(false)
		eventually(t, "the outbox to empty", func() bool { return p.Stats().Queued == 0 })
		if got := stored(t, o, "b"); !sameStrings(got, accepted) {
			t.Fatalf("stored %d; want the %d accepted", len(got), len(accepted))
		}
	})
	t.Run("drop-oldest", func(t *testing.T) {
		o := &outage{Store: sqlite(t)}
		p := pipeline(t, o, persist.PipelineOptions{Mode: persist.Async, Outbox: t.TempDir(), OutboxBytes: 8 << 10, Overflow: persist.DropOldest, MinBackoff: 5 * time.Millisecond})
		o.down.Store(true)
		all := numbered("d", 200)
		publishAll(t, p, "d/x", all)
		st := p.Stats()
		if st.Dropped == 0 || st.OutboxBytes > 8<<10 {
			t.Fatalf("stats %+v", st)
		}
		o.down.Store(false)
		eventually(t, "the outbox to empty", func() bool { return p.Stats().Queued == 0 })
		got := stored(t, o, "d")
		st = p.Stats()
		if uint64(len(got))+st.Dropped != 200 || st.Written != uint64(len(got)) {
			t.Fatalf("stored %d + dropped %d != 200 published (stats %+v)", len(got), st.Dropped, st)
		}
		if !sameStrings(got, all[200-len(got):]) {
			t.Fatalf("kept %v...; want the newest %d", got[:min(3, len(got))], len(got))
		}
	})
}

// A message the store refuses for good is counted, handed to the dead
// letter store, and does not hold back the others.
func TestPipelineDeadLetter(t *testing.T) {
	s := sqlite(t)
	dead := newRec("dead")
	var logs syncBuffer
	// The store is behind a wrapper that does not pass on its Limits, so
	// the Router and Pipeline take the long topic and the store refuses it
	// when it is written.
	p := pipeline(t, struct{ persist.Store }{s}, persist.PipelineOptions{Name: "main", Mode: persist.Async, Outbox: t.TempDir(), DeadLetter: dead,
		Interval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r := mustRouter(t, persist.Rule{Name: "telemetry", Store: p})
	long := "x/" + strings.Repeat("l", 1100) // longer than sqlstore takes
	publishAll(t, r, "x/a", []string{"one"})
	if err := r.Publish(context.Background(), &persist.Message{Topic: long, Payload: []byte("refused"), QoS: 1, From: "pub-7"}); err != nil {
		t.Fatal(err)
	}
	publishAll(t, r, "x/a", []string{"two"})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, s, "x"); !sameStrings(got, []string{"one", "two"}) {
		t.Fatalf("stored %v", got)
	}
	if topics := dead.topics(); len(topics) != 1 || topics[0] != long {
		t.Fatalf("dead letters: %d %v", len(topics), topics)
	}
	if st := p.Stats(); st.Failed != 1 || st.Written != 2 {
		t.Errorf("stats %+v", st)
	}
	for _, want := range []string{"store refused a message", "store=main", "rule=telemetry", "client=pub-7", "topic=" + long[:20]} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNewPipelineRejects(t *testing.T) {
	s := newRec("s")
	for _, c := range []struct {
		store persist.Store
		opts  persist.PipelineOptions
		want  string
	}{
		{nil, persist.PipelineOptions{}, "nil store"},
		{s, persist.PipelineOptions{Mode: 9}, "unknown mode"},
		{s, persist.PipelineOptions{Overflow: 7}, "unknown overflow"},
		{s, persist.PipelineOptions{MaxBatch: -1}, "negative"},
		{s, persist.PipelineOptions{Timeout: -time.Second}, "negative duration"},
		{s, persist.PipelineOptions{Outbox: t.TempDir()}, "Outbox needs Mode Async"},
	} {
		_, err := persist.NewPipeline(c.store, &c.opts)
		if !errors.Is(err, persist.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewPipeline(%+v): %v; want an error saying %q", c.opts, err, c.want)
		}
	}
	for _, s := range []string{"durable", "async"} {
		if m, err := persist.ParseWriteMode(s); err != nil || m.String() != s {
			t.Errorf("ParseWriteMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := persist.ParseWriteMode("fast"); err == nil || !strings.Contains(err.Error(), `"fast"`) {
		t.Errorf("ParseWriteMode(fast): %v", err)
	}
	for _, s := range []string{"block", "drop-oldest"} {
		if o, err := persist.ParseOverflow(s); err != nil || o.String() != s {
			t.Errorf("ParseOverflow(%q) = %v, %v", s, o, err)
		}
	}
}

// A Router writes through the pipelines it is given and reads lookups from
// the stores behind them.
func TestRouterWithPipeline(t *testing.T) {
	s := sqlite(t)
	p := pipeline(t, s, persist.PipelineOptions{Name: "main", Mode: persist.Async, Outbox: t.TempDir()})
	r := mustRouter(t, persist.Rule{Name: "all", Store: p})
	if err := r.Publish(context.Background(), &persist.Message{Topic: "rp/x", Payload: []byte("v"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.Retain(context.Background(), &persist.Message{Topic: "rp/x", Payload: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.FetchOffline(context.Background(), "c", "rp/#", persist.Fetch{}); err != nil || len(got) != 1 {
		t.Fatalf("fetch: %v %v", got, err)
	}
	eventually(t, "the retained message", func() bool {
		got, err := r.Retained(context.Background(), "rp/#")
		return err == nil && len(got) == 1
	})
	if ps := r.Pipelines(); len(ps) != 1 || ps[0] != p {
		t.Fatalf("Pipelines: %v", ps)
	}
	// A store given twice, once bare and once in a pipeline of the same name, is refused.
	if _, err := persist.NewRouter(persist.Rule{Store: p}, persist.Rule{Store: pipeline(t, s, persist.PipelineOptions{Name: "main"})}); err == nil {
		t.Error("two pipelines named main accepted")
	}
	// Bare stores get durable pipelines with distinct names.
	r2 := mustRouter(t, persist.Rule{Store: sqlite(t)}, persist.Rule{Store: sqlite(t)})
	ps := r2.Pipelines()
	if len(ps) != 2 || ps[0].Name() == ps[1].Name() || ps[0].Mode() != persist.Durable {
		t.Fatalf("pipelines %q %q", ps[0].Name(), ps[1].Name())
	}
}

// Two pipelines never share an outbox: the second is refused while the
// first has it open.
func TestPipelineOutboxInUse(t *testing.T) {
	dir := t.TempDir()
	s := sqlite(t)
	p1 := pipeline(t, s, persist.PipelineOptions{Mode: persist.Async, Outbox: dir})
	_, err := persist.NewPipeline(s, &persist.PipelineOptions{Mode: persist.Async, Outbox: dir})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second pipeline on one outbox: %v", err)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	pipeline(t, s, persist.PipelineOptions{Mode: persist.Async, Outbox: dir})
}

// Close waits for the durable writes under way (it does not cancel them),
// and refuses new ones.
func TestPipelineCloseWaitsForWrites(t *testing.T) {
	s := newRec("gated")
	s.gate = make(chan struct{})
	p, err := persist.NewPipeline(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- p.Publish(context.Background(), &persist.Message{Topic: "c/x", QoS: 1}) }()
	time.Sleep(100 * time.Millisecond) // the write reaches the store and waits at its gate
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a write was under way", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(s.gate)
	if err := <-published; err != nil {
		t.Fatalf("the write under way at Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), &persist.Message{Topic: "c/x", QoS: 1}); !errors.Is(err, persist.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
}

// In async mode a client's state and subscriptions go through the outbox
// with the other writes, in order: made while the database is down, they
// are stored once it is back, also after a restart.
func TestPipelineAsyncClientStateSurvivesOutage(t *testing.T) {
	s := sqlite(t)
	o := &outage{Store: s}
	dir := t.TempDir()
	opts := persist.PipelineOptions{Mode: persist.Async, Outbox: dir, MinBackoff: 5 * time.Millisecond, Drain: 50 * time.Millisecond}
	p1, err := persist.NewPipeline(o, &opts)
	if err != nil {
		t.Fatal(err)
	}
	o.down.Store(true)
	ctx := t.Context()
	at := time.Now().Truncate(time.Second)
	if err := p1.Connected(ctx, &persist.Client{ID: "dev", Node: "n1", Online: true, OnlineAt: at}); err != nil {
		t.Fatalf("Connected while the store is down: %v", err)
	}
	subs := []persist.Subscription{{Filter: "cmd/dev/#", QoS: 1}, {Filter: "all/+", QoS: 2}}
	if err := p1.Subscribed(ctx, "dev", subs, nil); err != nil {
		t.Fatalf("Subscribed while the store is down: %v", err)
	}
	if err := p1.Subscribed(ctx, "dev", nil, []string{"all/+"}); err != nil {
		t.Fatalf("Subscribed (removal) while the store is down: %v", err)
	}
	// Published after the subscription was made, before it was written:
	// the subscription starts when it was made.
	time.Sleep(5 * time.Millisecond)
	cmd := &persist.Message{Topic: "cmd/dev/reboot", Payload: []byte("now"), QoS: 1}
	if err := p1.Publish(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	if err := p1.Subscribed(ctx, "dev", []persist.Subscription{{Filter: "bad/#/x"}}, nil); !errors.Is(err, persist.ErrInvalid) {
		t.Fatalf("an invalid subscription = %v, want ErrInvalid before the outbox", err)
	}
	if st := p1.Stats(); st.Queued != 4 {
		t.Fatalf("outbox holds %d records, want 4", st.Queued)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(ctx, "dev"); !errors.Is(err, persist.ErrNotFound) {
		t.Fatalf("client stored while the store was down: %v", err)
	}
	o.down.Store(false)
	opts.Drain = 0
	p2 := pipeline(t, o, opts)
	eventually(t, "the outbox to empty", func() bool { return p2.Stats().Queued == 0 })
	c, err := s.Client(ctx, "dev")
	if err != nil || !c.Online || c.Node != "n1" || !c.OnlineAt.Equal(at) {
		t.Fatalf("client after the restart: %+v, %v", c, err)
	}
	got, err := s.Subscriptions(ctx, "dev")
	if err != nil || len(got) != 1 || got[0].Filter != "cmd/dev/#" || got[0].QoS != 1 {
		t.Fatalf("subscriptions after the restart: %+v, %v; want only cmd/dev/# (all/+ was removed after)", got, err)
	}
	msgs, err := s.FetchOffline(ctx, "dev", "cmd/dev/#", persist.Fetch{})
	if err != nil || len(msgs) != 1 || msgs[0].ID != cmd.ID {
		t.Errorf("fetch after the restart: %v, %v; want the message published after the subscription was made", msgs, err)
	}
	if st := p2.Stats(); st.Written != 1 {
		t.Errorf("stats %+v, want 1 written (a client's state and subscriptions are records, not items)", st)
	}
}
