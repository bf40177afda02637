package timescale_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
	"github.com/mqttpersist/mqttpersist/tsdb"
	"github.com/mqttpersist/mqttpersist/tsdb/timescale"
)

const seedTemplates = "../../examples/tsdb/emqx_backend_timescale.tmpl"

// seedSchema is the seeds' tables (the Timescale tutorial's sensor_data,
// and easy_data for the payload itself).
var seedSchema = []string{
	`CREATE TABLE IF NOT EXISTS sensor_data (time timestamptz NOT NULL, location text NOT NULL,
		temperature double precision, humidity double precision)`,
	`CREATE TABLE IF NOT EXISTS easy_data (time timestamptz NOT NULL, data jsonb)`,
}

const sensorPayload = `{"data":[
	{"location":"bedroom", "temperature":21.3, "humidity":40.3},
	{"location":"bathroom", "temperature":22.3, "humidity":61.8},
	{"location":"kitchen", "temperature":29.5, "humidity":58.7}]}`

func pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newMsg(topic, payload string) *persist.Message {
	return &persist.Message{ID: persist.NewID(), Topic: topic, Payload: []byte(payload), QoS: 1, From: "c1", Time: time.Now()}
}

func publish(t testing.TB, st persist.Store, msgs ...*persist.Message) {
	t.Helper()
	if err := st.Publish(t.Context(), msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// seedWriter returns a writer with the seeds' templates on a fresh
// database, migrated, and its pool.
func seedWriter(t testing.TB, o *timescale.Options) (*timescale.Writer, *pgxpool.Pool) {
	t.Helper()
	p := pool(t, testenv.PostgresURL(t))
	set, err := tsdb.LoadTimescale(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	if o == nil {
		o = &timescale.Options{}
	}
	o.Schema = seedSchema
	w, err := timescale.New(p, set, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w, p
}

func query(t testing.TB, p *pgxpool.Pool, sql string) []string {
	t.Helper()
	rows, err := p.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(fmt.Sprint(vals), "["), "]"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSeedExample: the sensor_data template writes the three rows
// bedroom, bathroom and kitchen with the numbers as numbers; sensor_data2/#
// one row; easy_data the payload itself, as JSON.
func TestSeedExample(t *testing.T) {
	t.Parallel()
	w, p := seedWriter(t, nil)
	publish(t, w, newMsg("sensor_data", sensorPayload),
		newMsg("sensor_data2/room1", `{"location": "attic", "temperature": -3.25, "humidity": 91}`),
		newMsg("easy_data", `{"any": ["json", 1, true]}`))
	got := query(t, p, `SELECT location, temperature, humidity, now() - time < interval '1 minute' FROM sensor_data ORDER BY temperature`)
	want := []string{"attic -3.25 91 true", "bedroom 21.3 40.3 true", "bathroom 22.3 61.8 true", "kitchen 29.5 58.7 true"}
	if !slices.Equal(got, want) {
		t.Errorf("sensor_data rows %q, want %q", got, want)
	}
	if got := query(t, p, `SELECT data->'any'->>0, data->'any'->>1 FROM easy_data`); !slices.Equal(got, []string{"json 1"}) {
		t.Errorf("easy_data rows %q", got)
	}
	if s := w.Stats(); s.Messages != 3 || s.Points != 5 {
		t.Errorf("Stats %+v", s)
	}
}

// TestHypertableWithoutExtension: this PostgreSQL has no timescaledb;
// Migrate leaves the hypertables plain tables, and the INSERTs work alike.
func TestHypertableWithoutExtension(t *testing.T) {
	t.Parallel()
	w, p := seedWriter(t, &timescale.Options{Hypertables: []timescale.Hypertable{{Table: "sensor_data", TimeColumn: "time"}}})
	ok, err := w.HasTimescale(t.Context())
	if err != nil || ok {
		t.Fatalf("HasTimescale = %v, %v; want false (no extension here)", ok, err)
	}
	if err := w.Migrate(t.Context()); err != nil { // again
		t.Fatalf("second Migrate: %v", err)
	}
	if got := query(t, p, `SELECT to_regproc('create_hypertable') IS NULL`); !slices.Equal(got, []string{"true"}) {
		t.Errorf("create_hypertable exists: %q", got)
	}
	publish(t, w, newMsg("sensor_data", sensorPayload))
	if got := query(t, p, `SELECT count(*) FROM sensor_data`); !slices.Equal(got, []string{"3"}) {
		t.Errorf("rows %q, want 3", got)
	}
}

// TestHostile: values are bound, never spliced: quotes, injections,
// backslashes, newlines and $n land as data.
func TestHostile(t *testing.T) {
	t.Parallel()
	p := pool(t, testenv.PostgresURL(t))
	set, err := tsdb.ParseTimescale("hostile.json", []byte(`{"#": {"name": "h",
		"sql": "insert into h(topic, client, v, raw) values ($1, $2, $3, $4) -- $9 in a comment",
		"param_keys": ["$topic", "$clientid", ["$payload", "v"], "$payload"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	w, err := timescale.New(p, set, &timescale.Options{Schema: []string{`CREATE TABLE h (topic text, client text, v text, raw bytea)`}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	values := []string{`a'; DROP TABLE h; --`, `x"); DELETE FROM h; --`, `back\slash \\ \'`, "line\nbreak\r\n", "$1 $2", `{"$gt":""}`, "传感器 😀"}
	var msgs []*persist.Message
	for i, v := range values {
		js := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`).Replace(v)
		m := newMsg("h/"+v, `{"v": "`+js+`"}`)
		m.From = fmt.Sprintf("%d %s", i, v)
		msgs = append(msgs, m)
	}
	publish(t, w, msgs...)
	rows, err := p.Query(t.Context(), `SELECT topic, client, v, raw FROM h`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var top, client, v string
		var raw []byte
		if err := rows.Scan(&top, &client, &v, &raw); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(msgs, func(m *persist.Message) bool { return m.Topic == top })
		if i < 0 || client != msgs[i].From || v != values[i] || string(raw) != string(msgs[i].Payload) {
			t.Errorf("row %q %q %q %q", top, client, v, raw)
		}
		n++
	}
	if n != len(values) {
		t.Errorf("%d rows, want %d", n, len(values))
	}
}

// TestRefused: a row the database refuses fails the whole batch, with an
// error matching ErrInvalid (not retryable) naming the message, the
// template and the row; nothing of the batch is written.
func TestRefused(t *testing.T) {
	t.Parallel()
	w, p := seedWriter(t, nil)
	good := newMsg("sensor_data", sensorPayload)
	bad := newMsg("sensor_data", `{"data": [{"location": "hall", "temperature": 20, "humidity": 50}, {"location": null, "temperature": "warm", "humidity": 1}]}`)
	err := w.Publish(t.Context(), good, bad)
	if !errors.Is(err, persist.ErrInvalid) || persist.IsRetryable(err) ||
		!strings.Contains(err.Error(), fmt.Sprintf(`timescale: Publish message %s (topic "sensor_data") template "insert_sensor_data" row 2:`, bad.ID)) {
		t.Fatalf("Publish: %v", err)
	}
	if got := query(t, p, `SELECT count(*) FROM sensor_data`); !slices.Equal(got, []string{"0"}) {
		t.Errorf("%q rows written of a refused batch", got)
	}
	publish(t, w, good)
	if got := query(t, p, `SELECT count(*) FROM sensor_data`); !slices.Equal(got, []string{"3"}) {
		t.Errorf("rows %q, want 3", got)
	}
}

// TestUnavailable: a database that cannot be reached is a retryable error
// matching ErrUnavailable.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	p := pool(t, "postgres://mqtt:mqtt@127.0.0.1:1/mqtt?sslmode=disable&connect_timeout=2")
	set, err := tsdb.LoadTimescale(seedTemplates)
	if err != nil {
		t.Fatal(err)
	}
	w, err := timescale.New(p, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for what, err := range map[string]error{"Publish": w.Publish(t.Context(), newMsg("sensor_data", sensorPayload)), "Ping": w.Ping(t.Context())} {
		if !errors.Is(err, persist.ErrUnavailable) || !persist.IsRetryable(err) {
			t.Errorf("%s: %v", what, err)
		}
	}
}

// TestOpen: timescale:// URLs.
func TestOpen(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	p := pool(t, url)
	for _, s := range seedSchema {
		if _, err := p.Exec(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	tsURL := "timescale" + strings.TrimPrefix(url, "postgres") + "&templates=" + seedTemplates + "&hypertable=sensor_data:time"
	st, err := persist.Open(t.Context(), tsURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.(persist.Migrator).Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	publish(t, st, newMsg("sensor_data", sensorPayload))
	if got := query(t, p, `SELECT count(*) FROM sensor_data`); !slices.Equal(got, []string{"3"}) {
		t.Errorf("rows %q, want 3", got)
	}
	if err := st.(persist.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(t.Context(), newMsg("sensor_data", sensorPayload)); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	for _, c := range []struct{ url, want string }{
		{"timescale://u:hunter2@127.0.0.1/db", "no templates file"},
		{"timescale://u:hunter2@127.0.0.1/db?templates=" + seedTemplates + "&hypertable=x", `hypertable="x"`},
		{"timescale://u:hunter2@127.0.0.1/db?templates=missing.tmpl", "missing.tmpl"},
	} {
		_, err := persist.Open(t.Context(), c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%s): %v, want an error saying %q without the password", c.url, err, c.want)
		}
	}
}

// TestConformance runs persisttest on the writer, one table per store in
// one database, read back with SELECT. The statement keeps a message once
// (ON CONFLICT on its ID), as the Publish doc advises.
func TestConformance(t *testing.T) {
	t.Parallel()
	p := pool(t, testenv.PostgresURL(t))
	var n sync.Mutex
	count := 0
	var tables sync.Map // *timescale.Writer → its table
	persisttest.Run(t, persisttest.Harness{
		New: func(t testing.TB) persist.Store {
			n.Lock()
			count++
			table := fmt.Sprintf("mqtt_%d", count)
			n.Unlock()
			tmpl := fmt.Sprintf(`{"name": "%%s", "sql": "insert into %s(id, topic, payload, qos, sender, username, peerhost, ts) values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing",
				"param_keys": ["$id", "$topic", "$payload", "$qos", "$clientid", "$username", "$peerhost", "$timestamp"]}`, table)
			set, err := tsdb.ParseTimescale("conformance.json", []byte(`{"#": `+fmt.Sprintf(tmpl, "all")+`, "$SYS/#": `+fmt.Sprintf(tmpl, "sys")+`}`))
			if err != nil {
				t.Fatal(err)
			}
			w, err := timescale.New(p, set, &timescale.Options{Schema: []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (id text PRIMARY KEY,
				topic text NOT NULL, payload bytea NOT NULL, qos smallint, sender text, username text, peerhost text, ts bigint)`, table)}})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			tables.Store(w, table)
			return w
		},
		ReadBack: func(t testing.TB, st persist.Store) []*persist.Message {
			table, _ := tables.Load(st)
			rows, err := p.Query(t.Context(), `SELECT id, topic, payload, qos, sender, username, peerhost, ts FROM `+table.(string))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []*persist.Message
			for rows.Next() {
				m := &persist.Message{}
				var qos int16
				var ns int64
				if err := rows.Scan(&m.ID, &m.Topic, &m.Payload, &qos, &m.From, &m.Username, &m.PeerHost, &ns); err != nil {
					t.Fatal(err)
				}
				if m.Payload == nil {
					m.Payload = []byte{}
				}
				m.QoS, m.Time = byte(qos), time.Unix(0, ns)
				out = append(out, m)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		},
		Features: persisttest.Features{Drops: persisttest.FieldRetain | persisttest.FieldNode | persisttest.FieldExpiry |
			persisttest.FieldMode | persisttest.FieldProps},
	})
}
