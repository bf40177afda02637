package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// TestDemo runs the program with -demo against InfluxDB, OpenTSDB
// (VictoriaMetrics) and PostgreSQL: the seeds' examples land as the seeds
// say, through the broker.
func TestDemo(t *testing.T) {
	influx := testenv.InfluxDBURL(t)
	db := testenv.InfluxDBDatabase(t, influx)
	vm := testenv.VictoriaMetricsURL(t)
	pg := testenv.PostgresURL(t)
	start := time.Now()
	var stdout, stderr strings.Builder
	err := run(t.Context(), []string{"-demo", "-listen", "127.0.0.1:0", "-outbox", t.TempDir(),
		"-influxdb", influx, "-database", db, "-opentsdb", "http://" + testenv.VictoriaMetricsOpenTSDB(t), "-timescale", pg}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"influxdb: 1 messages, 2 points, 0 skipped; 4 written, 0 failed",
		"opentsdb: 1 messages, 2 points, 0 skipped; 4 written, 0 failed",
		"timescale: 3 messages, 5 points, 0 skipped; 4 written, 0 failed",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, stdout.String(), stderr.String())
		}
	}

	rows := testenv.InfluxRows(t, influx, db, "SELECT * FROM sample")
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s %s %s", r["host"], r["region"], r["qos"], r["temperature"]))
	}
	if want := []string{"serverA hangzhou 1 1", "serverB ningbo 1 2"}; !slices.Equal(got, want) {
		t.Errorf("InfluxDB points %q, want %q", got, want)
	}

	got = got[:0]
	for _, s := range testenv.VictoriaMetricsExportSince(t, vm, `{__name__="sample",clientid="inline"}`, start.Truncate(time.Millisecond), 2) {
		for _, v := range s.Values {
			got = append(got, fmt.Sprintf("%s %s %v", s.Metric["host"], s.Metric["region"], v))
		}
	}
	slices.Sort(got)
	if want := []string{"serverA hangzhou 1", "serverB ningbo 2"}; !slices.Equal(got, want) {
		t.Errorf("OpenTSDB samples %q, want %q", got, want)
	}

	conn, err := pgx.Connect(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	got = got[:0]
	r, err := conn.Query(t.Context(), `SELECT location, temperature, humidity FROM sensor_data ORDER BY temperature, location`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var loc string
		var temp, hum float64
		if err := r.Scan(&loc, &temp, &hum); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v %v", loc, temp, hum))
	}
	r.Close()
	if want := []string{"bedroom 21.3 40.3", "bathroom 22.3 61.8", "kitchen 29.5 58.7", "kitchen 29.5 58.7"}; !slices.Equal(got, want) {
		t.Errorf("Timescale rows %q, want %q", got, want)
	}
	var data string
	if err := conn.QueryRow(t.Context(), `SELECT data->>'any' FROM easy_data`).Scan(&data); err != nil || data != "json" {
		t.Errorf("easy_data: %q, %v", data, err)
	}
}

// TestNoDatabase: without a database the program says what to give.
func TestNoDatabase(t *testing.T) {
	var stdout, stderr strings.Builder
	if err := run(t.Context(), []string{"-demo"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "give -influxdb, -opentsdb or -timescale") {
		t.Errorf("run: %v", err)
	}
}
