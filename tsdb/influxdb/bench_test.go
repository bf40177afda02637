package influxdb_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
	"github.com/mqttpersist/mqttpersist/tsdb/influxdb"
)

// benchBatch is the messages of one Publish (two points each: the seeds'
// sample).
const benchBatch = 500

// benchMessages returns n of the seeds' sample messages, each at a time
// of its own (so that every point is a new one).
func benchMessages(n int) []*persist.Message {
	base := time.Now().Add(-time.Hour)
	msgs := make([]*persist.Message, n)
	for i := range msgs {
		m := newMsg("sample", samplePayload)
		m.Time = base.Add(time.Duration(i) * time.Microsecond)
		msgs[i] = m
	}
	return msgs
}

// BenchmarkHTTP writes the seeds' sample messages into InfluxDB over HTTP
// (1.x API), benchBatch messages (1000 points) per Publish, through the
// Writer (render and post) and, for comparison in the same run, as the
// same lines rendered beforehand and posted with a plain http.Client.
// Each reports points/s. Interleaved takes turns (a writer batch, a plain
// batch) so that both see the same load on a shared machine, and reports
// the ratio of their rates.
func BenchmarkHTTP(b *testing.B) {
	url := testenv.InfluxDBURL(b)
	set := seedSet(b)
	b.Run("Interleaved", func(b *testing.B) {
		w, err := influxdb.New(url, set, &influxdb.Options{Database: testenv.InfluxDBDatabase(b, url)})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		plainDB := testenv.InfluxDBDatabase(b, url)
		msgs := benchMessages(b.N * benchBatch)
		bodies := render(b, set, benchMessages(b.N*benchBatch), b.N)
		client := &http.Client{}
		var tw, tp time.Duration
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			if err := w.Publish(b.Context(), msgs[i*benchBatch:(i+1)*benchBatch]...); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			post(b, client, url+"/write?db="+plainDB+"&precision=n", bodies[i])
			tp += time.Since(t1)
			tw += t1.Sub(t0)
		}
		pw, pp := float64(2*benchBatch*b.N)/tw.Seconds(), float64(2*benchBatch*b.N)/tp.Seconds()
		b.ReportMetric(pw, "writer-points/s")
		b.ReportMetric(pp, "plain-points/s")
		b.ReportMetric(pw/pp, "ratio")
	})
	b.Run("Writer", func(b *testing.B) {
		db := testenv.InfluxDBDatabase(b, url)
		w, err := influxdb.New(url, set, &influxdb.Options{Database: db})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		msgs := benchMessages(b.N * benchBatch)
		b.ResetTimer()
		for i := range b.N {
			if err := w.Publish(b.Context(), msgs[i*benchBatch:(i+1)*benchBatch]...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(2*benchBatch*b.N)/b.Elapsed().Seconds(), "points/s")
	})
	b.Run("PlainHTTP", func(b *testing.B) {
		db := testenv.InfluxDBDatabase(b, url)
		bodies := render(b, set, benchMessages(b.N*benchBatch), b.N)
		client := &http.Client{}
		write := url + "/write?db=" + db + "&precision=n"
		b.ResetTimer()
		for i := range b.N {
			post(b, client, write, bodies[i])
		}
		b.ReportMetric(float64(2*benchBatch*b.N)/b.Elapsed().Seconds(), "points/s")
	})
}

// render returns the line protocol of msgs in n bodies of benchBatch
// messages, rendered with set.
func render(b *testing.B, set *tsdb.Set[tsdb.Influx], msgs []*persist.Message, n int) [][]byte {
	bodies := make([][]byte, n)
	s := tsdb.GetScope()
	defer tsdb.PutScope(s)
	o := &tsdb.LineOptions{}
	for i := range n {
		var buf []byte
		for _, m := range msgs[i*benchBatch : (i+1)*benchBatch] {
			s.Reset(m)
			set.Each(m.Topic, func(_ int, t *tsdb.Influx) {
				var err error
				if buf, _, err = t.AppendLines(buf, s, o, nil); err != nil {
					b.Fatal(err)
				}
			})
		}
		bodies[i] = buf
	}
	return bodies
}

// post writes body with a plain HTTP POST.
func post(b *testing.B, client *http.Client, url string, body []byte) {
	resp, err := client.Post(url, "text/plain; charset=utf-8", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b.Fatalf("POST: %s", resp.Status)
	}
}
