package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// The seeds' sample payload of the InfluxDB and OpenTSDB examples, and of
// the Timescale one.
const (
	tsdbSample = `{"data": [{"temp": 1, "host": "serverA", "region": "hangzhou"},
		{"temp": 2, "host": "serverB", "region": "ningbo"}]}`
	tsdbSensor = `{"data":[{"location":"bedroom","temperature":21.3,"humidity":40.3},
		{"location":"bathroom","temperature":22.3,"humidity":61.8},
		{"location":"kitchen","temperature":29.5,"humidity":58.7}]}`
)

func seedTemplate(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "tsdb", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTSDBInfluxDB: -tsdb with the seeds' InfluxDB template, next to a
// store: a client publishing the seeds' sample (QoS 0) through the broker
// writes the two points the seeds list; a payload that is not JSON is
// skipped, logged and counted; /metrics shows it.
func TestTSDBInfluxDB(t *testing.T) {
	url := testenv.InfluxDBURL(t)
	db := testenv.InfluxDBDatabase(t, url)
	b := startBroker(t, "-store", "sqlite://"+filepath.Join(t.TempDir(), "mqtt.db"),
		"-tsdb", "influxdb://"+strings.TrimPrefix(url, "http://")+"/"+db, "-templates", seedTemplate(t, "emqx_backend_influxdb.tmpl"),
		"-metrics", "127.0.0.1:0")
	if !strings.Contains(b.out(), "rule tsdb: # → tsdb") {
		t.Errorf("startup lines lack the tsdb rule:\n%s", b.out())
	}
	c := mqtttest.Dial(t, b.addr, "mqttjs_ebcc36079a", mqtttest.Options{})
	c.Publish("sample", []byte(tsdbSample), 0, false)
	c.Publish("sample", []byte("not json"), 1, false)
	var rows []map[string]string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && len(rows) < 2; time.Sleep(20 * time.Millisecond) {
		rows = testenv.InfluxRows(t, url, db, "SELECT * FROM sample")
	}
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s %s %s %s", r["clientid"], r["host"], r["region"], r["qos"], r["temperature"]))
	}
	want := []string{"mqttjs_ebcc36079a serverA hangzhou 0 1", "mqttjs_ebcc36079a serverB ningbo 0 2"}
	if !slices.Equal(got, want) {
		t.Errorf("points %q, want %q", got, want)
	}
	var m map[string]float64
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if m = b.scrape(t); m[`mqttpersist_tsdb_skipped_total{reason="not_json",store="tsdb"}`] == 1 {
			break
		}
	}
	if m[`mqttpersist_tsdb_points_total{store="tsdb"}`] != 2 || m[`mqttpersist_tsdb_messages_total{store="tsdb"}`] != 2 ||
		m[`mqttpersist_tsdb_skipped_total{reason="not_json",store="tsdb"}`] != 1 {
		t.Errorf("tsdb metrics %v", pick(m, "mqttpersist_tsdb_"))
	}
	b.stop()
	if log := b.errOut(); !strings.Contains(log, "tsdb: message skipped for a template") || !strings.Contains(log, "reason=not_json") {
		t.Errorf("the skip is not logged:\n%s", log)
	}
}

func pick(m map[string]float64, prefix string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// TestTSDBOpenTSDB: -tsdb opentsdb://: the seeds' sample makes two data
// points in VictoriaMetrics.
func TestTSDBOpenTSDB(t *testing.T) {
	vm := testenv.VictoriaMetricsURL(t)
	client := testenv.FreshName("broker_")
	b := startBroker(t, "-store", "sqlite://"+filepath.Join(t.TempDir(), "mqtt.db"), "-tsdb", "opentsdb://"+testenv.VictoriaMetricsOpenTSDB(t), "-templates", seedTemplate(t, "emqx_backend_opentsdb.tmpl"))
	c := mqtttest.Dial(t, b.addr, client, mqtttest.Options{})
	c.Publish("sample", []byte(tsdbSample), 1, false)
	series := testenv.VictoriaMetricsExport(t, vm, `{__name__="sample",clientid="`+client+`"}`, 2)
	var got []string
	for _, s := range series {
		got = append(got, fmt.Sprintf("%s %s %s %v", s.Metric["host"], s.Metric["region"], s.Metric["qos"], s.Values))
	}
	slices.Sort(got)
	if want := []string{"serverA hangzhou 1 [1]", "serverB ningbo 1 [2]"}; !slices.Equal(got, want) {
		t.Errorf("series %q, want %q", got, want)
	}
}

// TestTSDBTimescale: -tsdb postgres://… is the Timescale writer; the
// seeds' sensor_data message makes the three rows bedroom, bathroom and
// kitchen.
func TestTSDBTimescale(t *testing.T) {
	pg := testenv.PostgresURL(t)
	conn, err := pgx.Connect(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE TABLE sensor_data (time timestamptz NOT NULL, location text, temperature double precision, humidity double precision)`); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, "-store", "sqlite://"+filepath.Join(t.TempDir(), "mqtt.db"), "-mode", "async", "-outbox", filepath.Join(t.TempDir(), "outbox"),
		"-tsdb", pg, "-templates", seedTemplate(t, "emqx_backend_timescale.tmpl"))
	c := mqtttest.Dial(t, b.addr, "sensor-1", mqtttest.Options{})
	c.Publish("sensor_data", []byte(tsdbSensor), 1, false)
	var got []string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && len(got) < 3; time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		rows, err := conn.Query(t.Context(), `SELECT location, temperature, humidity FROM sensor_data ORDER BY temperature`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var loc string
			var temp, hum float64
			if err := rows.Scan(&loc, &temp, &hum); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %v %v", loc, temp, hum))
		}
		rows.Close()
	}
	if want := []string{"bedroom 21.3 40.3", "bathroom 22.3 61.8", "kitchen 29.5 58.7"}; !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
}

// TestTSDBFlags: what -tsdb and -templates refuse.
func TestTSDBFlags(t *testing.T) {
	tmpl := seedTemplate(t, "emqx_backend_influxdb.tmpl")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-templates", tmpl}, "without -tsdb"},
		{[]string{"-tsdb", "influxdb://127.0.0.1:1/db"}, "no templates file"},
		{[]string{"-tsdb", "nonsense", "-templates", tmpl}, "want a URL"},
		{[]string{"-tsdb", "influxdb://127.0.0.1:1/db?templates=" + tmpl, "-templates", tmpl}, "give one"},
		{[]string{"-tsdb", "influxdb://127.0.0.1:1/db", "-templates", filepath.Join(t.TempDir(), "missing.tmpl")}, "missing.tmpl"},
		{[]string{"-tsdb", "nosuch://127.0.0.1:1/db", "-templates", tmpl}, `unknown scheme "nosuch"`},
	} {
		var stdout, stderr strings.Builder
		err := run(t.Context(), append([]string{"-store", "none", "-listen", "127.0.0.1:0"}, c.args...), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
