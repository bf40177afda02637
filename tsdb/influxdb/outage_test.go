package influxdb_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb/influxdb"
)

// TestOutageAsync: InfluxDB down for 10 s in the middle of a stream of
// messages written through an async pipeline: the publishers are not
// stopped (the outbox takes the messages), and once the server is back
// every point lands, once.
func TestOutageAsync(t *testing.T) {
	t.Parallel()
	srv := testenv.StartInfluxDB(t)
	db := testenv.InfluxDBDatabase(t, srv.URL())
	set := parse(t, `{"stream/#": {"measurement": "stream", "tags": {"id": "$id"}, "fields": {"topic": "$topic"}, "timestamp": "$timestamp"}}`)
	w, err := influxdb.New(srv.URL(), set, &influxdb.Options{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p, err := persist.NewPipeline(w, &persist.PipelineOptions{
		Name: "influxdb", Mode: persist.Async, Outbox: t.TempDir(),
		Timeout: 2 * time.Second, MaxBackoff: 300 * time.Millisecond, Health: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	const rate = 50 // messages per second
	var ids []string
	publishFor := func(d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second / rate) {
			m := newMsg(fmt.Sprintf("stream/%d", len(ids)%7), "")
			if err := p.Publish(t.Context(), m); err != nil {
				t.Fatalf("Publish %d: %v", len(ids), err)
			}
			ids = append(ids, m.ID)
		}
	}
	publishFor(2 * time.Second)
	srv.Stop(t)
	stopped := len(ids)
	publishFor(10 * time.Second) // the outage
	wasDown := !p.Stats().Up
	during := len(ids) - stopped
	srv.Start(t)
	publishFor(time.Second)

	// Wait until the outbox is empty, then read every point back.
	for end := time.Now().Add(30 * time.Second); p.Stats().Queued > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("outbox still holds %d records 30 s after the server came back: %+v", p.Stats().Queued, p.Stats())
		}
	}
	rows := testenv.InfluxRows(t, srv.URL(), db, "SELECT id, topic FROM stream")
	got := make([]string, 0, len(rows))
	for _, r := range rows {
		got = append(got, r["id"])
	}
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		missing, extra := diff(want, got), diff(got, want)
		t.Errorf("%d points, want %d (one per message): %d missing, %d extra or repeated", len(got), len(want), len(missing), len(extra))
	}
	s := p.Stats()
	if !wasDown || s.Retried == 0 || s.Failed != 0 || s.Dropped != 0 || during == 0 {
		t.Errorf("the outage did not show: down %v, %d published during it, stats %+v", wasDown, during, s)
	}
	t.Logf("%d messages, %d during the outage; pipeline %+v", len(ids), during, s)
}

// diff returns the elements of a (sorted) not in b (sorted), with
// repeats.
func diff(a, b []string) []string {
	var out []string
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			j++
			continue
		}
		out = append(out, x)
	}
	return out
}
