package tsdb_test

import (
	"testing"

	"github.com/mqttpersist/mqttpersist/tsdb"
)

// BenchmarkRender is the cost of one message through the seeds' sample
// templates: parsing the payload, evaluating the paths and writing the
// points (two per message), per message.
func BenchmarkRender(b *testing.B) {
	influx, err := tsdb.LoadInflux(influxFile)
	if err != nil {
		b.Fatal(err)
	}
	otsdb, err := tsdb.LoadOpenTSDB(opentsdbFile)
	if err != nil {
		b.Fatal(err)
	}
	ts, err := tsdb.LoadTimescale(timescaleFile)
	if err != nil {
		b.Fatal(err)
	}
	m := msg("sample", samplePayload)
	sensor := msg("sensor_data", sensorPayload)
	b.Run("InfluxLines", func(b *testing.B) {
		s := tsdb.GetScope()
		var buf []byte
		var ends []int
		o := &tsdb.LineOptions{}
		b.ReportAllocs()
		b.SetBytes(int64(len(m.Payload)))
		for b.Loop() {
			s.Reset(m)
			buf, ends = buf[:0], ends[:0]
			influx.Each(m.Topic, func(_ int, t *tsdb.Influx) {
				buf, ends, err = t.AppendLines(buf, s, o, ends)
			})
			if err != nil || len(ends) != 2 {
				b.Fatal(err, len(ends))
			}
		}
	})
	b.Run("OpenTSDBPuts", func(b *testing.B) {
		s := tsdb.GetScope()
		var buf []byte
		var ends []int
		o := &tsdb.PointOptions{}
		b.ReportAllocs()
		b.SetBytes(int64(len(m.Payload)))
		for b.Loop() {
			s.Reset(m)
			buf, ends = buf[:0], ends[:0]
			otsdb.Each(m.Topic, func(_ int, t *tsdb.OpenTSDB) {
				buf, ends, err = t.AppendPuts(buf, s, o, ends)
			})
			if err != nil || len(ends) != 2 {
				b.Fatal(err, len(ends))
			}
		}
	})
	b.Run("TimescaleRows", func(b *testing.B) {
		s := tsdb.GetScope()
		var rows [][]any
		b.ReportAllocs()
		b.SetBytes(int64(len(sensor.Payload)))
		for b.Loop() {
			s.Reset(sensor)
			rows = rows[:0]
			ts.Each(sensor.Topic, func(_ int, t *tsdb.Timescale) {
				rows, err = t.AppendRows(rows, s)
			})
			if err != nil || len(rows) != 3 {
				b.Fatal(err, len(rows))
			}
		}
	})
}
