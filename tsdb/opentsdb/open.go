package opentsdb

import (
	"context"
	"fmt"
	"net/url"
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
	bad := func(format string, args ...any) error {
		return &persist.Error{Store: "opentsdb", Op: "Open", Kind: persist.ErrInvalid,
			Err: fmt.Errorf("%s: %s", persist.Redact(rawURL), fmt.Sprintf(format, args...))}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, bad("not a URL: %v", err)
	}
	if u.Host == "" {
		return nil, bad("no host")
	}
	q := u.Query()
	file := q.Get("templates")
	if file == "" {
		return nil, bad("no templates file (add ?templates=FILE)")
	}
	var o Options
	tls := false
	for _, f := range []struct {
		name string
		to   *bool
	}{{"summary", &o.Summary}, {"details", &o.Details}, {"sync", &o.Sync}, {"tls", &tls}} {
		if s := q.Get(f.name); s != "" {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return nil, bad("%s=%q: want true or false", f.name, s)
			}
			*f.to = v
		}
	}
	if s := q.Get("sync_timeout"); s != "" {
		if ms, err := strconv.Atoi(s); err == nil && ms >= 0 {
			o.SyncTimeout = time.Duration(ms) * time.Millisecond
		} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			o.SyncTimeout = d
		} else {
			return nil, bad("sync_timeout=%q: want milliseconds or a duration", s)
		}
	}
	if s := q.Get("max_batch_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, bad("max_batch_size=%q: want a number >= 0", s)
		}
		o.MaxBatchSize = n
	}
	switch p := q.Get("precision"); p {
	case "":
	case "s":
		o.Precision = time.Second
	case "ms":
		o.Precision = time.Millisecond
	default:
		return nil, bad("precision=%q: want s or ms", p)
	}
	o.Name = q.Get("name")
	host := u.Host
	if u.Port() == "" {
		host += ":4242"
	}
	set, err := tsdb.LoadOpenTSDB(file)
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
