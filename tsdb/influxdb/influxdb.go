package influxdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

// Options configure a writer; nil means defaults. Which fields apply
// depends on the API: Database, RetentionPolicy, Username and Password
// are the 1.x /write API's; Org, Bucket and Token the 2.x /api/v2/write
// API's (V2); Precision, ServerTime and Name apply to every writer,
// BatchSize, MaxBody and Client to HTTP, MaxPacket to UDP.
type Options struct {
	// V2 writes through the 2.x API (/api/v2/write with org, bucket and a
	// token: InfluxDB 2.x and 3.x, VictoriaMetrics), in the 2.x protocol
	// (see tsdb.LineOptions.V2). By default the 1.x /write API.
	V2 bool
	// Database (1.x, required) and RetentionPolicy ("": the database's
	// default) say where points go; Username and Password, if set, are
	// sent as basic authentication.
	Database, RetentionPolicy string
	Username, Password        string
	// Org and Bucket (2.x, Bucket required) say where points go; Token,
	// if set, is sent as "Authorization: Token …".
	Org, Bucket, Token string
	// Precision is the unit of the timestamps written (and declared to
	// the server): time.Nanosecond (the default), Microsecond,
	// Millisecond or Second; 1.x also takes Minute and Hour.
	Precision time.Duration
	// ServerTime leaves the timestamp out of points of templates without
	// "timestamp", so that the server stamps them as they arrive (the
	// seeds' set_timestamp = false). By default such points get the
	// message's time, which keeps it when an outbox writes them late.
	ServerTime bool
	// BatchSize is the most points in one HTTP request (the seeds'
	// batch_size); a Publish with more makes several requests. Default
	// 5000.
	BatchSize int
	// MaxBody is the most bytes in one HTTP request, below the server's
	// max-body-size (InfluxDB 1.x: 25 MB). Default 8 MiB; a single point
	// larger than it is sent alone.
	MaxBody int
	// Client is the HTTP client; nil: a client of the writer's own, whose
	// idle connections Close closes. A caller's client is never closed.
	Client *http.Client
	// MaxPacket is the largest UDP datagram a UDP writer sends (InfluxDB
	// reads at most 64 KiB). Default 65000; a point larger than it is
	// skipped (tsdb.TooLarge).
	MaxPacket int
	// Name names the writer in errors; default "influxdb" ("influxdb(udp)"
	// for UDP).
	Name string
}

func (o *Options) orDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Precision <= 0 {
		c.Precision = time.Nanosecond
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 8 << 20
	}
	if c.MaxPacket <= 0 {
		c.MaxPacket = 65000
	}
	return c
}

// precisionParam returns the precision query parameter of an API.
func precisionParam(p time.Duration, v2 bool) (string, error) {
	switch p {
	case time.Nanosecond:
		if v2 {
			return "ns", nil
		}
		return "n", nil
	case time.Microsecond:
		if v2 {
			return "us", nil
		}
		return "u", nil
	case time.Millisecond:
		return "ms", nil
	case time.Second:
		return "s", nil
	case time.Minute, time.Hour:
		if !v2 {
			return map[time.Duration]string{time.Minute: "m", time.Hour: "h"}[p], nil
		}
	}
	return "", fmt.Errorf("precision %v is not one the API takes (ns, us, ms, s; 1.x also m, h)", p)
}

// Writer writes messages to InfluxDB over HTTP as the points its
// templates render. It is a publish-only persist.Store (see the package
// doc) and safe for concurrent use.
type Writer struct {
	persist.Unsupported
	tsdb.Reporter

	kit    *storekit.Kit
	set    *tsdb.Set[tsdb.Influx]
	opts   Options
	line   tsdb.LineOptions
	client *http.Client
	own    bool   // client is ours: Close closes its idle connections
	write  string // the write URL, with its query
	ping   string
	auth   string // the Authorization header, or ""
}

var (
	_ persist.Store          = (*Writer)(nil)
	_ persist.EventSupporter = (*Writer)(nil)
	_ persist.Pinger         = (*Writer)(nil)
	_ persist.Closer         = (*Writer)(nil)
)

// New returns a writer to the InfluxDB at serverURL (such as
// http://localhost:8086) writing the points set renders. It does not
// connect: Ping checks the server.
func New(serverURL string, set *tsdb.Set[tsdb.Influx], opts *Options) (*Writer, error) {
	o := opts.orDefaults()
	if o.Name == "" {
		o.Name = "influxdb"
	}
	bad := func(format string, args ...any) error {
		return &persist.Error{Store: o.Name, Op: "New", Kind: persist.ErrInvalid, Err: fmt.Errorf(format, args...)}
	}
	if set == nil {
		return nil, bad("no templates")
	}
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, bad("server URL %q: want http://host:port or https://host:port", persist.Redact(serverURL))
	}
	prec, err := precisionParam(o.Precision, o.V2)
	if err != nil {
		return nil, bad("%v", err)
	}
	base := strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	q := url.Values{}
	q.Set("precision", prec)
	w := &Writer{set: set, opts: o, line: tsdb.LineOptions{Precision: o.Precision, ServerTime: o.ServerTime, V2: o.V2}}
	if o.V2 {
		if o.Bucket == "" {
			return nil, bad("no bucket (the 2.x API needs one)")
		}
		q.Set("bucket", o.Bucket)
		if o.Org != "" {
			q.Set("org", o.Org)
		}
		w.write = base + "/api/v2/write?" + q.Encode()
		if o.Token != "" {
			w.auth = "Token " + o.Token
		}
	} else {
		if o.Database == "" {
			return nil, bad("no database (the 1.x API needs one)")
		}
		q.Set("db", o.Database)
		if o.RetentionPolicy != "" {
			q.Set("rp", o.RetentionPolicy)
		}
		w.write = base + "/write?" + q.Encode()
		if o.Username != "" || o.Password != "" {
			req := &http.Request{Header: http.Header{}}
			req.SetBasicAuth(o.Username, o.Password)
			w.auth = req.Header.Get("Authorization")
		}
	}
	w.ping = base + "/ping"
	w.client = o.Client
	if w.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		w.client, w.own = &http.Client{Transport: t}, true
	}
	w.kit = storekit.New(o.Name, persist.Limits{}, nil)
	return w, nil
}

// Events returns persist.OnPublish: the writer stores published messages
// only.
func (w *Writer) Events() persist.Event { return persist.OnPublish }

// buffers are the line buffers of Publish calls.
var buffers = sync.Pool{New: func() any { return new(lines) }}

// lines is a Publish call's rendered points: the text and the end offset
// of each line.
type lines struct {
	buf  []byte
	ends []int
}

func (l *lines) reset() { l.buf, l.ends = l.buf[:0], l.ends[:0] }

func putLines(l *lines) {
	if cap(l.buf) <= 16<<20 {
		buffers.Put(l)
	}
}

// render appends the points of msgs to l.
func render(r *tsdb.Reporter, set *tsdb.Set[tsdb.Influx], o *tsdb.LineOptions, msgs []*persist.Message, l *lines) {
	tsdb.Render(r, set, msgs, func(s *tsdb.Scope, t *tsdb.Influx) (int, error) {
		before := len(l.ends)
		var err error
		l.buf, l.ends, err = t.AppendLines(l.buf, s, o, l.ends)
		return len(l.ends) - before, err
	})
}

// Publish writes the points the templates render for msgs, in requests of
// at most BatchSize points. A message no template matches writes nothing;
// a message that does not fit a template is skipped for it (counted in
// Stats, handed to OnSkip; see the tsdb package doc) and is not an error.
// The server refusing points (a syntax or type conflict, a partial write:
// HTTP 400) is an error matching persist.ErrInvalid, not retryable: the
// other points of the request are written. A server that cannot be
// reached or fails (5xx, 429), a database not found (404) or refused
// credentials (401, 403) give a retryable error matching
// persist.ErrUnavailable: writing the same points again is harmless (a
// point with the same series and time replaces the other).
func (w *Writer) Publish(ctx context.Context, msgs ...*persist.Message) error {
	msgs, err := w.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	l := buffers.Get().(*lines)
	defer putLines(l)
	l.reset()
	render(&w.Reporter, w.set, &w.line, msgs, l)
	var refused []error
	for from := 0; from < len(l.ends); {
		to, start := from, 0
		if from > 0 {
			start = l.ends[from-1]
		}
		for to < len(l.ends) && to-from < w.opts.BatchSize && (to == from || l.ends[to]-start <= w.opts.MaxBody) {
			to++
		}
		err := w.post(ctx, l.buf[start:l.ends[to-1]], to-from)
		switch {
		case err == nil:
		case errors.Is(err, persist.ErrInvalid):
			refused = append(refused, err) // the rest of the request was written; go on
		default:
			return w.kit.Fail(ctx, "Publish", err)
		}
		from = to
	}
	if len(refused) > 0 {
		return w.kit.Fail(ctx, "Publish", &persist.Error{Kind: persist.ErrInvalid, Err: errors.Join(refused...)})
	}
	return nil
}

// ServerError is an HTTP error response of the server.
type ServerError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's error message (the "error" of InfluxDB's
	// JSON body, or the body's text).
	Message string
}

func (e *ServerError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
}

// post sends one request of n points.
func (w *Writer) post(ctx context.Context, body []byte, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.write, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if w.auth != "" {
		req.Header.Set("Authorization", w.auth)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	se := &ServerError{Status: resp.StatusCode, Message: errorMessage(resp)}
	return classify(se, fmt.Sprintf("%d points", n))
}

// classify returns the error of a server's answer.
func classify(se *ServerError, what string) error {
	switch s := se.Status; {
	case s == http.StatusBadRequest, s == http.StatusRequestEntityTooLarge, s == http.StatusUnprocessableEntity:
		return &persist.Error{What: what, Kind: persist.ErrInvalid, Err: se}
	case s == http.StatusUnauthorized, s == http.StatusForbidden, s == http.StatusNotFound,
		s == http.StatusTooManyRequests, s >= 500:
		return &persist.Error{What: what, Kind: persist.ErrUnavailable, Err: se, Retryable: true}
	}
	return &persist.Error{What: what, Err: se}
}

// errorMessage reads the error of a response: InfluxDB's
// X-Influxdb-Error header, or its body (JSON {"error": …} or
// {"message": …}, or text).
func errorMessage(resp *http.Response) string {
	if h := resp.Header.Get("X-Influxdb-Error"); h != "" {
		return h
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	s := strings.TrimSpace(string(b))
	for _, key := range []string{`"error":`, `"message":`} {
		if i := strings.Index(s, key); i >= 0 {
			rest := strings.TrimSpace(s[i+len(key):])
			if v, err := strconv.QuotedPrefix(rest); err == nil {
				if u, err := strconv.Unquote(v); err == nil {
					return u
				}
			}
		}
	}
	return s
}

// Ping checks that the server answers (GET /ping).
func (w *Writer) Ping(ctx context.Context) error {
	if err := w.kit.Ping(ctx); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.ping, nil)
	if err != nil {
		return w.kit.Fail(ctx, "Ping", err)
	}
	if w.auth != "" {
		req.Header.Set("Authorization", w.auth)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return w.kit.Fail(ctx, "Ping", &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true})
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return w.kit.Fail(ctx, "Ping", classify(&ServerError{Status: resp.StatusCode, Message: errorMessage(resp)}, ""))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return nil
}

// Close stops the writer: later calls fail with persist.ErrClosed. It
// closes the idle connections of its own HTTP client, never a caller's.
func (w *Writer) Close() error {
	if w.kit.Close() && w.own {
		w.client.CloseIdleConnections()
	}
	return nil
}
