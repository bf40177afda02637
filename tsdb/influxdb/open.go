package influxdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

func init() {
	persist.Register("influxdb", func(_ context.Context, u string) (persist.Store, error) { return Open(u) })
	persist.Register("influxdb2", func(_ context.Context, u string) (persist.Store, error) { return Open(u) })
	persist.Register("influxdb+udp", func(_ context.Context, u string) (persist.Store, error) { return Open(u) })
}

// Open returns the writer a URL names (persist.Open calls it for the
// schemes influxdb, influxdb2 and influxdb+udp, which this package
// registers):
//
//	influxdb://[user:password@]host:port/database?templates=FILE[&rp=…]   the 1.x /write API
//	influxdb2://host:port/bucket?templates=FILE&org=…&token=…            the 2.x /api/v2/write API
//	influxdb+udp://host:port?templates=FILE                              InfluxDB's UDP listener
//
// templates (required) is the file of InfluxDB templates (see
// tsdb.LoadInflux). Every scheme also takes precision (ns, us, ms, s;
// default ns), set_timestamp (false: a template without "timestamp"
// leaves the time to the server) and name; the HTTP ones batch_size,
// max_body and tls=true (HTTPS); UDP max_packet. The port defaults to 8086
// (8089 for UDP). It does not connect: Ping checks the server.
func Open(rawURL string) (persist.Store, error) {
	u, err := tsdb.ParseURL("influxdb", rawURL, true)
	if err != nil {
		return nil, err
	}
	q := u.Query
	var o Options
	if p := q.Get("precision"); p != "" {
		if o.Precision, err = parsePrecision(p); err != nil {
			return nil, u.Bad("%v", err)
		}
	}
	set := true
	tls := false
	for _, err := range []error{
		u.Bool("set_timestamp", &set), u.Bool("tls", &tls),
		u.Int("batch_size", &o.BatchSize, 1), u.Int("max_body", &o.MaxBody, 1), u.Int("max_packet", &o.MaxPacket, 1),
	} {
		if err != nil {
			return nil, err
		}
	}
	o.ServerTime = !set
	o.Name = q.Get("name")
	host := u.Host
	templates, err := tsdb.LoadInflux(u.Templates)
	if err != nil {
		return nil, err
	}
	path := strings.Trim(u.Path, "/")
	scheme := strings.ToLower(u.Scheme)
	if scheme == "influxdb+udp" {
		if u.Port() == "" {
			host += ":8089"
		}
		return NewUDP(host, templates, &o)
	}
	if u.Port() == "" {
		host += ":8086"
	}
	httpScheme := "http"
	if tls {
		httpScheme = "https"
	}
	switch scheme {
	case "influxdb2":
		o.V2 = true
		o.Bucket, o.Org, o.Token = path, q.Get("org"), q.Get("token")
		if o.Bucket == "" {
			return nil, u.Bad("no bucket (influxdb2://host:port/BUCKET)")
		}
	default:
		o.Database, o.RetentionPolicy = path, q.Get("rp")
		if o.Database == "" {
			return nil, u.Bad("no database (influxdb://host:port/DATABASE)")
		}
		if u.User != nil {
			o.Username = u.User.Username()
			o.Password, _ = u.User.Password()
		}
	}
	return New(httpScheme+"://"+host, templates, &o)
}

// parsePrecision parses a precision: ns, us, ms, s (also n, u, m, h as
// the 1.x API spells them).
func parsePrecision(s string) (time.Duration, error) {
	switch s {
	case "ns", "n":
		return time.Nanosecond, nil
	case "us", "u", "µs":
		return time.Microsecond, nil
	case "ms":
		return time.Millisecond, nil
	case "s":
		return time.Second, nil
	case "m":
		return time.Minute, nil
	case "h":
		return time.Hour, nil
	}
	return 0, fmt.Errorf("precision=%q: want ns, us, ms or s", s)
}
