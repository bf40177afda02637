package influxdb_test

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
	"github.com/mqttpersist/mqttpersist/tsdb"
	"github.com/mqttpersist/mqttpersist/tsdb/influxdb"
)

// conformance is the template of the conformance runs: one point per
// message, with what a template can map of it (persisttest drops the
// rest). The ID is a tag, so that each message is a series of its own
// and the same message written twice is one point.
func conformance(measurement string) string {
	tmpl := `{"measurement": "` + measurement + `", "tags": {"id": "$id"},
		"fields": {"topic": "$topic", "payload": "$payload", "qos": "$qos", "from": "$clientid",
			"username": "$username", "peerhost": "$peerhost"},
		"timestamp": "$timestamp"}`
	return `{"#": ` + tmpl + `, "$SYS/#": ` + tmpl + `}`
}

// drops are the message fields no template placeholder carries.
const drops = persisttest.FieldRetain | persisttest.FieldNode | persisttest.FieldExpiry | persisttest.FieldMode | persisttest.FieldProps

// readBack reads the points of measurement as messages.
func readBack(t testing.TB, url, db, measurement string) []*persist.Message {
	t.Helper()
	var out []*persist.Message
	for _, r := range testenv.InfluxRows(t, url, db, `SELECT * FROM "`+measurement+`"`) {
		ns, err := strconv.ParseInt(r["time"], 10, 64)
		if err != nil {
			t.Fatalf("time %q: %v", r["time"], err)
		}
		qos, _ := strconv.Atoi(r["qos"])
		out = append(out, &persist.Message{
			ID: r["id"], Topic: r["topic"], Payload: append([]byte{}, r["payload"]...),
			QoS: byte(qos), From: r["from"], Username: r["username"], PeerHost: r["peerhost"],
			Time: time.Unix(0, ns),
		})
	}
	return out
}

// TestConformance runs persisttest on the HTTP (1.x API) and UDP writers
// against InfluxDB, reading back through /query.
func TestConformance(t *testing.T) {
	t.Run("HTTP", func(t *testing.T) {
		t.Parallel()
		url := testenv.InfluxDBURL(t)
		var dbs sync.Map // *influxdb.Writer → its database
		persisttest.Run(t, persisttest.Harness{
			New: func(t testing.TB) persist.Store {
				db := testenv.InfluxDBDatabase(t, url)
				set, err := tsdb.ParseInflux("conformance.json", []byte(conformance("mqtt")))
				if err != nil {
					t.Fatal(err)
				}
				w, err := influxdb.New(url, set, &influxdb.Options{Database: db})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { w.Close() })
				dbs.Store(w, db)
				return w
			},
			ReadBack: func(t testing.TB, st persist.Store) []*persist.Message {
				db, _ := dbs.Load(st)
				return readBack(t, url, db.(string), "mqtt")
			},
			// InfluxDB's documented limit of a string field is 64 KB
			// (it takes more, slowly).
			Features: persisttest.Features{Drops: drops, MaxPayload: 64 << 10},
		})
	})
	t.Run("UDP", func(t *testing.T) {
		t.Parallel()
		url := testenv.InfluxDBURL(t)
		addr, db := testenv.InfluxDBUDP(t)
		var measurements sync.Map // *influxdb.UDPWriter → its measurement
		var synced sync.Map       // *influxdb.UDPWriter → its Stats().Points at the last udpSync
		persisttest.Run(t, persisttest.Harness{
			New: func(t testing.TB) persist.Store {
				meas := testenv.FreshName("conformance_")
				set, err := tsdb.ParseInflux("conformance.json", []byte(conformance(meas)))
				if err != nil {
					t.Fatal(err)
				}
				w, err := influxdb.NewUDP(addr, set, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { w.Close() })
				measurements.Store(w, meas)
				return w
			},
			ReadBack: func(t testing.TB, st persist.Store) []*persist.Message {
				meas, _ := measurements.Load(st)
				// Wait for the listener only when points were sent since.
				points := st.(*influxdb.UDPWriter).Stats().Points
				if last, ok := synced.Load(st); !ok || last.(uint64) != points {
					udpSync(t, addr, url, db)
					synced.Store(st, points)
				}
				return readBack(t, url, db, meas.(string))
			},
			// A line must fit in a datagram, and a burst of datagrams in
			// the server's socket buffer (UDP drops the rest).
			Features: persisttest.Features{Drops: drops, MaxPayload: 4 << 10},
		})
	})
}

// udpSync returns once InfluxDB has written every point sent to its UDP
// listener before: it sends a marker point and waits until the marker can
// be read (the listener writes its points in the order they came).
func udpSync(t testing.TB, addr, url, db string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	marker := testenv.FreshName("marker_")
	if _, err := fmt.Fprintf(c, "%s v=1\n", marker); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if len(testenv.InfluxRows(t, url, db, `SELECT * FROM "`+marker+`"`)) > 0 {
			testenv.InfluxQL(t, url, db, `DROP MEASUREMENT "`+marker+`"`)
			return
		}
	}
	t.Fatalf("the UDP marker %s did not arrive in 10 s", marker)
}
