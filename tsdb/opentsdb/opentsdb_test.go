package opentsdb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
	"github.com/mqttpersist/mqttpersist/tsdb/opentsdb"
)

const seedTemplates = "../../examples/tsdb/emqx_backend_opentsdb.tmpl"

const samplePayload = `{"data": [{"temp": 1, "host": "serverA", "region": "hangzhou"},
	{"temp": 2, "host": "serverB", "region": "ningbo"}]}`

func seedSet(t testing.TB) *tsdb.Set[tsdb.OpenTSDB] {
	t.Helper()
	set, err := tsdb.LoadOpenTSDB(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// sample returns the seeds' message from a client of a name of its own
// (the metric "sample" is shared by every test and run).
func sample(t testing.TB) *persist.Message {
	return &persist.Message{ID: persist.NewID(), Topic: "sample", Payload: []byte(samplePayload), QoS: 0,
		From: testenv.FreshName("mqttjs_"), Time: time.Now()}
}

func publish(t testing.TB, st persist.Store, msgs ...*persist.Message) {
	t.Helper()
	if err := st.Publish(t.Context(), msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// vmSamples reads the samples of metric sample of client from
// VictoriaMetrics as "host region qos value@ms", sorted.
func vmSamples(t testing.TB, client string, n int) []string {
	t.Helper()
	var out []string
	for _, s := range testenv.VictoriaMetricsExport(t, testenv.VictoriaMetricsURL(t), `{__name__="sample",clientid="`+client+`"}`, n) {
		for i, v := range s.Values {
			out = append(out, fmt.Sprintf("%s %s %s %v@%d", s.Metric["host"], s.Metric["region"], s.Metric["qos"], v, s.Timestamps[i]))
		}
	}
	slices.Sort(out)
	return out
}

func seedWant(m *persist.Message, ms int64) []string {
	return []string{fmt.Sprintf("serverA hangzhou 0 1@%d", ms), fmt.Sprintf("serverB ningbo 0 2@%d", ms)}
}

// TestSeedExample: the seeds' OpenTSDB example writes two data points,
// through HTTP /api/put and telnet put, into VictoriaMetrics.
func TestSeedExample(t *testing.T) {
	t.Parallel()
	addr := testenv.VictoriaMetricsOpenTSDB(t)
	t.Run("HTTP", func(t *testing.T) {
		t.Parallel()
		w, err := opentsdb.New("http://"+addr, seedSet(t), &opentsdb.Options{Summary: true, Sync: true, SyncTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		m := sample(t)
		publish(t, w, m)
		if got, want := vmSamples(t, m.From, 2), seedWant(m, m.Time.UnixMilli()); !slices.Equal(got, want) {
			t.Errorf("samples %q, want %q", got, want)
		}
		if s := w.Stats(); s.Messages != 1 || s.Points != 2 {
			t.Errorf("Stats %+v", s)
		}
	})
	t.Run("Telnet", func(t *testing.T) {
		t.Parallel()
		w, err := opentsdb.NewTelnet(addr, seedSet(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		m := sample(t)
		publish(t, w, m)
		if got, want := vmSamples(t, m.From, 2), seedWant(m, m.Time.Unix()*1000); !slices.Equal(got, want) {
			t.Errorf("samples %q, want %q", got, want)
		}
	})
}

// TestInfluxDBInput: the seeds' example through InfluxDB's OpenTSDB
// input, over HTTP and telnet, in seconds (its input reads millisecond
// timestamps as microseconds).
func TestInfluxDBInput(t *testing.T) {
	t.Parallel()
	addr, db := testenv.InfluxDBOpenTSDB(t)
	url := testenv.InfluxDBURL(t)
	http, err := opentsdb.New("http://"+addr, seedSet(t), &opentsdb.Options{Precision: time.Second, Summary: true, Details: true})
	if err != nil {
		t.Fatal(err)
	}
	defer http.Close()
	telnet, err := opentsdb.NewTelnet(addr, seedSet(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer telnet.Close()
	for _, w := range []persist.Store{http, telnet} {
		m := sample(t)
		publish(t, w, m)
		var rows []map[string]string
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if rows = testenv.InfluxRows(t, url, db, `SELECT * FROM sample WHERE clientid = '`+m.From+`'`); len(rows) >= 2 {
				break
			}
		}
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprintf("%s %s %s %s@%s", r["host"], r["region"], r["qos"], r["value"], r["time"]))
		}
		slices.Sort(got)
		ns := m.Time.Unix() * 1e9
		want := []string{fmt.Sprintf("serverA hangzhou 0 1@%d", ns), fmt.Sprintf("serverB ningbo 0 2@%d", ns)}
		if !slices.Equal(got, want) {
			t.Errorf("%T: points %q, want %q", w, got, want)
		}
	}
}

type countingTransport struct {
	n atomic.Int64
	http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}

// TestMaxBatchSize: at most max_batch_size (default 20) points per
// request; every point lands.
func TestMaxBatchSize(t *testing.T) {
	t.Parallel()
	addr := testenv.VictoriaMetricsOpenTSDB(t)
	ct := &countingTransport{RoundTripper: http.DefaultTransport}
	w, err := opentsdb.New("http://"+addr, seedSet(t), &opentsdb.Options{Client: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	client := testenv.FreshName("batch_")
	var msgs []*persist.Message
	base := time.Now()
	for i := range 12 {
		m := sample(t)
		m.From, m.Time = client, base.Add(time.Duration(i)*time.Millisecond)
		msgs = append(msgs, m)
	}
	publish(t, w, msgs...)
	if n := ct.n.Load(); n != 2 {
		t.Errorf("%d requests for 24 points, want 2", n)
	}
	if got := vmSamples(t, client, 24); len(got) != 24 {
		t.Errorf("%d samples, want 24", len(got))
	}
}

// TestHostile: OpenTSDB has no escapes: a tag value with a space or a
// newline (which would split a telnet line into a second put) is skipped
// with its reason, and writes nothing.
func TestHostile(t *testing.T) {
	t.Parallel()
	addr := testenv.VictoriaMetricsOpenTSDB(t)
	metric := testenv.FreshName("hostile_")
	set, err := tsdb.ParseOpenTSDB("hostile.json", []byte(`{"#": {"measurement": "`+metric+`", "tags": {"v": ["$payload", "v"], "client": "$clientid"}, "value": 1}}`))
	if err != nil {
		t.Fatal(err)
	}
	w, err := opentsdb.NewTelnet(addr, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var skips atomic.Int64
	w.OnSkip(func(s tsdb.Skip) {
		if s.Reason == tsdb.Unwritable {
			skips.Add(1)
		}
	})
	evil := testenv.FreshName("evil_")
	good := &persist.Message{ID: persist.NewID(), Topic: "t", Payload: []byte(`{"v": "ok-1.2/x_y"}`), From: "c", Time: time.Now()}
	var msgs []*persist.Message
	for _, v := range []string{"a b", `a\nput ` + evil + ` 1 1 x=y`, "a=b", `quote\"d`, "comma,x"} {
		msgs = append(msgs, &persist.Message{ID: persist.NewID(), Topic: "t", Payload: []byte(`{"v": "` + v + `"}`), From: "c", Time: time.Now()})
	}
	publish(t, w, append(msgs, good)...)
	if skips.Load() != int64(len(msgs)) {
		t.Errorf("%d skips, want %d", skips.Load(), len(msgs))
	}
	vm := testenv.VictoriaMetricsURL(t)
	series := testenv.VictoriaMetricsExport(t, vm, `{__name__="`+metric+`"}`, 1)
	if len(series) != 1 || series[0].Metric["v"] != "ok-1.2/x_y" {
		t.Errorf("series %v, want the good one only", series)
	}
	if s := testenv.VictoriaMetricsExport(t, vm, `{__name__="`+evil+`"}`, 0); len(s) != 0 {
		t.Errorf("an injected put was written: %v", s)
	}
}

// TestUnavailable: no server is a retryable error matching ErrUnavailable.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	h, err := opentsdb.New("http://127.0.0.1:1", seedSet(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tn, err := opentsdb.NewTelnet("127.0.0.1:1", seedSet(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	for _, st := range []interface {
		persist.Store
		persist.Pinger
	}{h, tn} {
		for what, err := range map[string]error{"Publish": st.Publish(t.Context(), sample(t)), "Ping": st.Ping(t.Context())} {
			if !errors.Is(err, persist.ErrUnavailable) || !persist.IsRetryable(err) {
				t.Errorf("%T %s: %v", st, what, err)
			}
		}
	}
}

// TestOpen: the URL schemes this package registers.
func TestOpen(t *testing.T) {
	t.Parallel()
	addr := testenv.VictoriaMetricsOpenTSDB(t)
	ctx := t.Context()
	for _, u := range []string{
		"opentsdb://" + addr + "?templates=" + seedTemplates + "&summary=true&details=false&sync=false&sync_timeout=0&max_batch_size=20",
		"opentsdb+telnet://" + addr + "?templates=" + seedTemplates + "&precision=s",
	} {
		st, err := persist.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		m := sample(t)
		publish(t, st, m)
		if got := vmSamples(t, m.From, 2); len(got) != 2 {
			t.Errorf("%s: samples %q", u, got)
		}
		st.(persist.Closer).Close()
	}
	for _, c := range []struct{ url, want string }{
		{"opentsdb://" + addr, "no templates file"},
		{"opentsdb://" + addr + "?templates=" + seedTemplates + "&precision=us", `precision="us"`},
		{"opentsdb://" + addr + "?templates=" + seedTemplates + "&sync=maybe", `sync="maybe"`},
		{"opentsdb://" + addr + "?templates=" + seedTemplates + "&sync_timeout=-1", `sync_timeout="-1"`},
		{"opentsdb://" + addr + "?templates=" + seedTemplates + "&max_batch_size=x", `max_batch_size="x"`},
		{"opentsdb://" + addr + "?templates=nope.tmpl", "nope.tmpl"},
	} {
		if _, err := persist.Open(ctx, c.url); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s): %v, want an error saying %q", c.url, err, c.want)
		}
	}
}

// TestClosed: after Close every call fails with ErrClosed.
func TestClosed(t *testing.T) {
	t.Parallel()
	addr := testenv.VictoriaMetricsOpenTSDB(t)
	h, err := opentsdb.New("http://"+addr, seedSet(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := opentsdb.NewTelnet(addr, seedSet(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, tn, sample(t)) // connected
	for _, st := range []interface {
		persist.Store
		persist.Pinger
		persist.Closer
	}{h, tn} {
		if err := st.Close(); err != nil {
			t.Errorf("%T Close: %v", st, err)
		}
		if err := st.Publish(t.Context(), sample(t)); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("%T Publish after Close: %v", st, err)
		}
		if err := st.Ping(t.Context()); !errors.Is(err, persist.ErrClosed) {
			t.Errorf("%T Ping after Close: %v", st, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := st.Publish(ctx, sample(t)); !errors.Is(err, context.Canceled) {
			t.Errorf("%T Publish with a cancelled context: %v", st, err)
		}
	}
}
