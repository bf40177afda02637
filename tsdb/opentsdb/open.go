package opentsdb

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

func init() {
	persist.Register("opentsdb", func(_ context.Context, u string) (persist.Store, error) { return Open(u) })
	persist.Register("opentsdb+telnet", func(_ context.Context, u string) (persist.Store, error) { return Open(u) })
}

// Open returns the writer a URL names (persist.Open calls it for the
// schemes opentsdb and opentsdb+telnet, which this package registers):
//
//	opentsdb://host:4242?templates=FILE[&summary=true&details=false&sync=false&sync_timeout=0&max_batch_size=20]
//	opentsdb+telnet://host:4242?templates=FILE
//
// templates (required) is the file of OpenTSDB templates (see
// tsdb.LoadOpenTSDB); summary, details, sync, sync_timeout (milliseconds,
// or a duration such as 500ms) and max_batch_size are the seeds' settings
// of the HTTP API; both schemes take precision (s or ms) and name, HTTP
// tls=true (HTTPS). The port defaults to 4242. It does not connect.
func Open(rawURL string) (persist.Store, error) {
	u, err := tsdb.ParseURL("opentsdb", rawURL, true)
	if err != nil {
		return nil, err
	}
	q := u.Query
	var o Options
	tls := false
	for _, err := range []error{
		u.Bool("summary", &o.Summary), u.Bool("details", &o.Details), u.Bool("sync", &o.Sync), u.Bool("tls", &tls),
		u.Int("max_batch_size", &o.MaxBatchSize, 0),
	} {
		if err != nil {
			return nil, err
		}
	}
	if s := q.Get("sync_timeout"); s != "" {
		if ms, err := strconv.Atoi(s); err == nil && ms >= 0 {
			o.SyncTimeout = time.Duration(ms) * time.Millisecond
		} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			o.SyncTimeout = d
		} else {
			return nil, u.Bad("sync_timeout=%q: want milliseconds or a duration", s)
		}
	}
	switch p := q.Get("precision"); p {
	case "":
	case "s":
		o.Precision = time.Second
	case "ms":
		o.Precision = time.Millisecond
	default:
		return nil, u.Bad("precision=%q: want s or ms", p)
	}
	o.Name = q.Get("name")
	host := u.Host
	if u.Port() == "" {
		host += ":4242"
	}
	set, err := tsdb.LoadOpenTSDB(u.Templates)
	if err != nil {
		return nil, err
	}
	if strings.ToLower(u.Scheme) == "opentsdb+telnet" {
		return NewTelnet(host, set, &o)
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return New(scheme+"://"+host, set, &o)
}
