package influxdb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
	"github.com/mqttpersist/mqttpersist/tsdb/influxdb"
)

const seedTemplates = "../../examples/tsdb/emqx_backend_influxdb.tmpl"

// samplePayload is the seeds' example payload.
const samplePayload = `{"data": [{"temp": 1, "host": "serverA", "region": "hangzhou"},
	{"temp": 2, "host": "serverB", "region": "ningbo"}]}`

func seedSet(t testing.TB) *tsdb.Set[tsdb.Influx] {
	t.Helper()
	set, err := tsdb.LoadInflux(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func parse(t testing.TB, body string) *tsdb.Set[tsdb.Influx] {
	t.Helper()
	set, err := tsdb.ParseInflux(t.Name()+".json", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func newMsg(topic, payload string) *persist.Message {
	return &persist.Message{ID: persist.NewID(), Topic: topic, Payload: []byte(payload), QoS: 1,
		From: "mqttjs_ebcc36079a", Time: time.Now()}
}

// v1 returns a writer to a fresh database on the shared InfluxDB.
func v1(t testing.TB, set *tsdb.Set[tsdb.Influx], o *influxdb.Options) (*influxdb.Writer, string, string) {
	t.Helper()
	url := testenv.InfluxDBURL(t)
	db := testenv.InfluxDBDatabase(t, url)
	if o == nil {
		o = &influxdb.Options{}
	}
	o.Database = db
	w, err := influxdb.New(url, set, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, url, db
}

func publish(t testing.TB, st persist.Store, msgs ...*persist.Message) {
	t.Helper()
	if err := st.Publish(t.Context(), msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// TestSeedExample: the seeds' template and payload write exactly the two
// points the seeds list, with tags host, region, qos, clientid and the
// field temperature 1 and 2 as numbers (float fields), at the message's
// time.
func TestSeedExample(t *testing.T) {
	t.Parallel()
	w, url, db := v1(t, seedSet(t), nil)
	m := newMsg("sample", samplePayload)
	publish(t, w, m)
	rows := testenv.InfluxRows(t, url, db, "SELECT * FROM sample")
	want := []map[string]string{
		{"name": "sample", "time": fmt.Sprint(m.Time.UnixNano()), "clientid": "mqttjs_ebcc36079a", "host": "serverA", "qos": "1", "region": "hangzhou", "temperature": "1"},
		{"name": "sample", "time": fmt.Sprint(m.Time.UnixNano()), "clientid": "mqttjs_ebcc36079a", "host": "serverB", "qos": "1", "region": "ningbo", "temperature": "2"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("points\n%v\nwant\n%v", rows, want)
	}
	types := testenv.InfluxRows(t, url, db, "SHOW FIELD KEYS FROM sample")
	if len(types) != 1 || types[0]["fieldKey"] != "temperature" || types[0]["fieldType"] != "float" {
		t.Errorf("field keys %v, want temperature as float", types)
	}
	tags := testenv.InfluxRows(t, url, db, "SHOW TAG KEYS FROM sample")
	var keys []string
	for _, r := range tags {
		keys = append(keys, r["tagKey"])
	}
	if fmt.Sprint(keys) != "[clientid host qos region]" {
		t.Errorf("tag keys %v", keys)
	}
	if s := w.Stats(); s.Messages != 1 || s.Points != 2 || s.SkippedTotal() != 0 {
		t.Errorf("Stats %+v", s)
	}
}

// hostile holds values that must land as data: spaces, commas, '=',
// quotes, backslashes (as InfluxDB 1.x keeps them), newlines where line
// protocol can carry them (string fields).
var hostile = []string{
	"plain",
	"with space",
	" leading and trailing ",
	"a,b,,c",
	"k=v==w",
	`double "quoted"`,
	`single 'quoted'`,
	`back\slash`,
	`C:\temp\new`,
	`two\\backslashes`,
	`x, y=z "q" \w`,
	"tab\there",
	"unicode 传感器 😀",
	"*1\r\n$8\r\nFLUSHALL\r\n",
	"line\nbreak",
	"a'; DROP TABLE mqtt_msg; --",
}

// TestHostile: hostile topics, client IDs and payload strings land as
// data in measurements, tags, field keys and string fields; a value line
// protocol cannot carry (a newline in a tag) skips that message for the
// template, counted, and never splits or corrupts a line.
func TestHostile(t *testing.T) {
	t.Parallel()
	set := parse(t, `{"#": {
		"measurement": "m",
		"tags": {"topic": "$topic", "client": "$clientid", "tag, with=specials": ["$payload", "s"]},
		"fields": {"id": "$id", "topic": "$topic", "client": "$clientid", "s": ["$payload", "s"], "field, with=specials \"x\"": ["$payload", "s"], "raw": "$payload"}
	}}`)
	w, url, db := v1(t, set, nil)
	var skips []tsdb.Skip
	var mu sync.Mutex
	w.OnSkip(func(s tsdb.Skip) { mu.Lock(); skips = append(skips, s); mu.Unlock() })
	var msgs []*persist.Message
	var want, skipped []string
	for i, v := range hostile {
		js, err := jsonString(v)
		if err != nil {
			t.Fatal(err)
		}
		m := newMsg("h/"+v, `{"s": `+js+`}`)
		m.From = fmt.Sprintf("client %d %s", i, v)
		msgs = append(msgs, m)
		if strings.ContainsAny(v, "\r\n") { // tags cannot carry it
			skipped = append(skipped, m.ID)
		} else {
			want = append(want, m.ID)
		}
	}
	publish(t, w, msgs...)
	rows := testenv.InfluxRows(t, url, db, `SELECT * FROM m`)
	var got []string
	for _, r := range rows {
		got = append(got, r["id"])
		i := slices.IndexFunc(msgs, func(m *persist.Message) bool { return m.ID == r["id"] })
		if i < 0 {
			t.Errorf("a point of no message: %q", r)
			continue
		}
		m, v := msgs[i], hostile[i]
		for col, wantv := range map[string]string{
			"topic": m.Topic, "topic_1": m.Topic, "client": m.From, "client_1": m.From,
			"s": v, "tag, with=specials": v, `field, with=specials "x"`: v, "raw": string(m.Payload),
		} {
			if r[col] != wantv {
				t.Errorf("message %d (%q): %s = %q, want %q", i, v, col, r[col], wantv)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("points of messages %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	var gotSkips []string
	for _, s := range skips {
		gotSkips = append(gotSkips, s.Message.ID)
		if s.Reason != tsdb.Unwritable || !strings.Contains(s.Err.Error(), "newline") {
			t.Errorf("skip %v", &s)
		}
	}
	if !slices.Equal(gotSkips, skipped) {
		t.Errorf("skipped %q, want %q", gotSkips, skipped)
	}
	if s := w.Stats(); s.Skipped[tsdb.Unwritable] != uint64(len(skipped)) || s.Points != uint64(len(want)) {
		t.Errorf("Stats %+v", s)
	}
}

// jsonString quotes s as a JSON string.
func jsonString(s string) (string, error) {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// countingTransport counts the requests it passes to the real transport.
type countingTransport struct {
	n atomic.Int64
	http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}

// TestBatchSize: a Publish of more points than BatchSize makes several
// requests, and every point lands.
func TestBatchSize(t *testing.T) {
	t.Parallel()
	ct := &countingTransport{RoundTripper: http.DefaultTransport}
	w, url, db := v1(t, seedSet(t), &influxdb.Options{BatchSize: 5, Client: &http.Client{Transport: ct}})
	var msgs []*persist.Message
	for i := range 12 {
		m := newMsg("sample", samplePayload)
		m.Time = m.Time.Add(time.Duration(i) * time.Millisecond)
		msgs = append(msgs, m)
	}
	publish(t, w, msgs...)
	if n := ct.n.Load(); n != 5 { // 24 points in fives
		t.Errorf("%d requests, want 5", n)
	}
	if rows := testenv.InfluxRows(t, url, db, "SELECT * FROM sample"); len(rows) != 24 {
		t.Errorf("%d points, want 24", len(rows))
	}
}

// TestTypeConflict: a point the server refuses (a field of another type)
// is an error matching ErrInvalid, not retryable, naming the conflict;
// the other points of the request are written.
func TestTypeConflict(t *testing.T) {
	t.Parallel()
	set := parse(t, `{"#": {"measurement": "m", "tags": {"id": "$id"}, "fields": {"v": ["$payload", "v"]}}}`)
	w, url, db := v1(t, set, nil)
	publish(t, w, newMsg("a", `{"v": 1.5}`))
	good, bad := newMsg("a", `{"v": 2}`), newMsg("a", `{"v": "text"}`)
	err := w.Publish(t.Context(), good, bad)
	if !errors.Is(err, persist.ErrInvalid) || persist.IsRetryable(err) || !strings.Contains(err.Error(), "field type conflict") ||
		!strings.HasPrefix(err.Error(), "influxdb: Publish") {
		t.Fatalf("Publish: %v, want a permanent ErrInvalid naming the type conflict", err)
	}
	var se *influxdb.ServerError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Errorf("error %v is not the server's 400", err)
	}
	rows := testenv.InfluxRows(t, url, db, "SELECT * FROM m")
	if len(rows) != 2 || !slices.ContainsFunc(rows, func(r map[string]string) bool { return r["id"] == good.ID }) {
		t.Errorf("points %v, want the first and the good one", rows)
	}
}

// TestUnavailable: no server, or no such database, is retryable and
// matches ErrUnavailable; Ping says the same.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	url := testenv.InfluxDBURL(t)
	nodb, err := influxdb.New(url, seedSet(t), &influxdb.Options{Database: "no_such_database_" + persist.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	defer nodb.Close()
	err = nodb.Publish(t.Context(), newMsg("sample", samplePayload))
	if !errors.Is(err, persist.ErrUnavailable) || !persist.IsRetryable(err) || !strings.Contains(err.Error(), "database not found") {
		t.Errorf("Publish to a missing database: %v", err)
	}
	if err := nodb.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// A port nothing listens on.
	down, err := influxdb.New("http://127.0.0.1:1", seedSet(t), &influxdb.Options{Database: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	for what, err := range map[string]error{"Publish": down.Publish(t.Context(), newMsg("sample", samplePayload)), "Ping": down.Ping(t.Context())} {
		if !errors.Is(err, persist.ErrUnavailable) || !persist.IsRetryable(err) {
			t.Errorf("%s to a closed port: %v", what, err)
		}
	}
}

// TestV2: the 2.x API, against VictoriaMetrics: the seeds' example lands
// as two samples of sample_temperature with the four tags, and hostile
// tag values (backslashes included, escaped as the 2.x protocol reads
// them) land as labels.
func TestV2(t *testing.T) {
	t.Parallel()
	vm := testenv.VictoriaMetricsURL(t)
	meas := testenv.FreshName("v2_")
	set := parse(t, `{"sample": {"measurement": "`+meas+`",
		"tags": {"host": ["$payload", "data", "$0", "host"], "region": ["$payload", "data", "$0", "region"], "qos": "$qos", "clientid": "$clientid"},
		"fields": {"temperature": ["$payload", "data", "$0", "temp"]}, "timestamp": "$timestamp"},
		"hostile": {"measurement": "`+meas+`_h", "tags": {"id": "$id", "v": ["$payload", "v"]}, "fields": {"n": 1}}}`)
	w, err := influxdb.New(vm, set, &influxdb.Options{V2: true, Org: "o", Bucket: "b", Token: "secret", Precision: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	m := newMsg("sample", samplePayload)
	publish(t, w, m)
	var ids = map[string]string{}
	for _, v := range hostile {
		if strings.ContainsAny(v, "\r\n") {
			continue
		}
		js, _ := jsonString(v)
		hm := newMsg("hostile", `{"v": `+js+`}`)
		ids[hm.ID] = v
		publish(t, w, hm)
	}
	series := testenv.VictoriaMetricsExport(t, vm, `{__name__="`+meas+`_temperature"}`, 2)
	var got []string
	for _, s := range series {
		got = append(got, fmt.Sprintf("%s %s %s %s %v %v", s.Metric["host"], s.Metric["region"], s.Metric["qos"], s.Metric["clientid"], s.Values, s.Timestamps))
	}
	slices.Sort(got)
	ms := m.Time.UnixMilli()
	want := []string{
		fmt.Sprintf("serverA hangzhou 1 mqttjs_ebcc36079a [1] [%d]", ms),
		fmt.Sprintf("serverB ningbo 1 mqttjs_ebcc36079a [2] [%d]", ms),
	}
	if !slices.Equal(got, want) {
		t.Errorf("series\n%q\nwant\n%q", got, want)
	}
	hs := testenv.VictoriaMetricsExport(t, vm, `{__name__="`+meas+`_h_n"}`, len(ids))
	if len(hs) != len(ids) {
		t.Errorf("%d hostile series, want %d", len(hs), len(ids))
	}
	for _, s := range hs {
		if v, ok := ids[s.Metric["id"]]; !ok || s.Metric["v"] != v {
			t.Errorf("series %v: v = %q, want %q", s.Metric, s.Metric["v"], v)
		}
	}
}

// udpRows polls the UDP database until the measurement has n points (UDP
// points are written in the listener's batches) or 10 s pass.
func udpRows(t testing.TB, meas string, n int) []map[string]string {
	t.Helper()
	url := testenv.InfluxDBURL(t)
	_, db := testenv.InfluxDBUDP(t)
	var rows []map[string]string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if rows = testenv.InfluxRows(t, url, db, `SELECT * FROM "`+meas+`"`); len(rows) >= n {
			break
		}
	}
	return rows
}

// TestUDP: the seeds' example over UDP; a point larger than a datagram is
// skipped (TooLarge), the others are sent packed into datagrams.
func TestUDP(t *testing.T) {
	t.Parallel()
	addr, _ := testenv.InfluxDBUDP(t)
	meas := testenv.FreshName("udp_")
	set := parse(t, `{"sample": {"measurement": "`+meas+`",
		"tags": {"host": ["$payload", "data", "$0", "host"], "region": ["$payload", "data", "$0", "region"], "qos": "$qos", "clientid": "$clientid"},
		"fields": {"temperature": ["$payload", "data", "$0", "temp"]}, "timestamp": "$timestamp"},
		"big": {"measurement": "`+meas+`", "tags": {"host": "big"}, "fields": {"raw": "$payload"}}}`)
	w, err := influxdb.NewUDP(addr, set, &influxdb.Options{MaxPacket: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var msgs []*persist.Message
	for i := range 20 {
		m := newMsg("sample", samplePayload)
		m.Time = m.Time.Add(time.Duration(i) * time.Microsecond)
		msgs = append(msgs, m)
	}
	big := newMsg("big", strings.Repeat("x", 2000))
	publish(t, w, append(msgs, big)...)
	rows := udpRows(t, meas, 40)
	if len(rows) != 40 {
		t.Fatalf("%d points, want 40", len(rows))
	}
	for _, r := range rows {
		if r["host"] != "serverA" && r["host"] != "serverB" || r["temperature"] != "1" && r["temperature"] != "2" {
			t.Errorf("point %v", r)
		}
	}
	if s := w.Stats(); s.Skipped[tsdb.TooLarge] != 1 || s.Points != 40 {
		t.Errorf("Stats %+v", s)
	}
}

// TestOpen: the URL schemes this package registers.
func TestOpen(t *testing.T) {
	t.Parallel()
	url := testenv.InfluxDBURL(t)
	db := testenv.InfluxDBDatabase(t, url)
	host := strings.TrimPrefix(url, "http://")
	ctx := t.Context()
	st, err := persist.Open(ctx, "influxdb://"+host+"/"+db+"?templates="+seedTemplates+"&precision=ms")
	if err != nil {
		t.Fatal(err)
	}
	defer st.(persist.Closer).Close()
	if e, ok := st.(persist.EventSupporter); !ok || e.Events() != persist.OnPublish {
		t.Errorf("Events: %v", e)
	}
	m := newMsg("sample", samplePayload)
	publish(t, st, m)
	rows := testenv.InfluxRows(t, url, db, "SELECT * FROM sample")
	if len(rows) != 2 || rows[0]["time"] != fmt.Sprint(m.Time.UnixMilli()*1e6) {
		t.Errorf("points %v (want two at %d ms)", rows, m.Time.UnixMilli())
	}
	addr, _ := testenv.InfluxDBUDP(t)
	for _, u := range []string{
		"influxdb2://" + strings.TrimPrefix(testenv.VictoriaMetricsURL(t), "http://") + "/bucket?org=o&token=t&templates=" + seedTemplates,
		"influxdb+udp://" + addr + "?templates=" + seedTemplates + "&max_packet=1400",
	} {
		st, err := persist.Open(ctx, u)
		if err != nil {
			t.Errorf("Open(%s): %v", u, err)
			continue
		}
		st.(persist.Closer).Close()
	}
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.tmpl")
	if err := os.WriteFile(badFile, []byte(`{"a": {"measurement": "m", "fields": {"v": "$nope"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ url, want string }{
		{"influxdb://u:hunter2@" + host + "/" + db, "no templates file"},
		{"influxdb://u:hunter2@" + host + "?templates=" + seedTemplates, "no database"},
		{"influxdb2://" + host + "?templates=" + seedTemplates, "no bucket"},
		{"influxdb://u:hunter2@" + host + "/db?templates=" + seedTemplates + "&precision=d", `precision="d"`},
		{"influxdb://u:hunter2@" + host + "/db?templates=" + seedTemplates + "&batch_size=0", `batch_size="0"`},
		{"influxdb://u:hunter2@" + host + "/db?templates=" + badFile, `fields.v: line 1: "$nope" is not a placeholder`},
		{"influxdb://u:hunter2@" + host + "/db?templates=" + filepath.Join(dir, "missing"), "no such file"},
	} {
		_, err := persist.Open(ctx, c.url)
		if !errors.Is(err, persist.ErrInvalid) && !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%s): %v, want an error saying %q without the password", c.url, err, c.want)
		}
	}
}

// TestClosed: after Close every call fails with ErrClosed.
func TestClosed(t *testing.T) {
	t.Parallel()
	w, _, _ := v1(t, seedSet(t), nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Publish(t.Context(), newMsg("sample", samplePayload)); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := w.Ping(t.Context()); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Publish(ctx, newMsg("sample", samplePayload)); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v", err)
	}
}

// TestCredentials: the 1.x API's user and password, against a server of
// the test's own with authentication on: right credentials write (also
// given in the URL), wrong or none are refused with a retryable error
// (kept in an outbox until the credentials are fixed), naming the cause.
func TestCredentials(t *testing.T) {
	t.Parallel()
	srv := testenv.StartInfluxDBAuth(t, "admin", "s3cret'pw")
	db := testenv.InfluxDBDatabase(t, srv.URL())
	base := "http://" + srv.Addr()
	for _, c := range []struct {
		user, password string
		ok             bool
	}{{"admin", "s3cret'pw", true}, {"admin", "wrong", false}, {"", "", false}} {
		w, err := influxdb.New(base, seedSet(t), &influxdb.Options{Database: db, Username: c.user, Password: c.password})
		if err != nil {
			t.Fatal(err)
		}
		err = w.Publish(t.Context(), newMsg("sample", samplePayload))
		w.Close()
		switch {
		case c.ok && err != nil:
			t.Errorf("user %q: %v", c.user, err)
		case !c.ok && (!errors.Is(err, persist.ErrUnavailable) || !persist.IsRetryable(err) || !strings.Contains(err.Error(), "HTTP 401")):
			t.Errorf("user %q password %q: %v, want a retryable HTTP 401", c.user, c.password, err)
		case !c.ok && c.password != "" && strings.Contains(err.Error(), c.password):
			t.Errorf("the error shows the password: %v", err)
		}
	}
	st, err := persist.Open(t.Context(), "influxdb://admin:s3cret%27pw@"+srv.Addr()+"/"+db+"?templates="+seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, st, newMsg("sample", samplePayload))
	st.(persist.Closer).Close()
	if rows := testenv.InfluxRows(t, srv.URL(), db, "SELECT * FROM sample"); len(rows) != 4 {
		t.Errorf("%d points, want 4 (two messages)", len(rows))
	}
}

// TestRetentionPolicy: points go to the retention policy the writer
// names.
func TestRetentionPolicy(t *testing.T) {
	t.Parallel()
	url := testenv.InfluxDBURL(t)
	db := testenv.InfluxDBDatabase(t, url)
	testenv.InfluxQL(t, url, db, "CREATE RETENTION POLICY short ON "+db+" DURATION 1h REPLICATION 1")
	w, err := influxdb.New(url, seedSet(t), &influxdb.Options{Database: db, RetentionPolicy: "short"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	publish(t, w, newMsg("sample", samplePayload))
	if rows := testenv.InfluxRows(t, url, db, `SELECT * FROM "short"."sample"`); len(rows) != 2 {
		t.Errorf("%d points in the retention policy short, want 2", len(rows))
	}
	if rows := testenv.InfluxRows(t, url, db, `SELECT * FROM "autogen"."sample"`); len(rows) != 0 {
		t.Errorf("%d points in autogen, want none", len(rows))
	}
}
