package opentsdb

import (
	"bytes"
	"context"
	"encoding/json"
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

// Options configure a writer; nil means defaults. Summary, Details, Sync,
// SyncTimeout, MaxBatchSize and Client apply to HTTP; Precision and Name
// to both protocols.
type Options struct {
	// Summary and Details ask /api/put for a summary of what was written
	// (and the errors of each refused point): the seeds' summary = true,
	// details = false. A refused point is an error of Publish either way;
	// with Details its message names the point.
	Summary, Details bool
	// Sync makes the server answer once the points are stored, within
	// SyncTimeout (0: no limit): the seeds' sync and sync_timeout.
	Sync        bool
	SyncTimeout time.Duration
	// MaxBatchSize is the most data points in one request: the seeds'
	// max_batch_size, default 20. A Publish with more makes several.
	MaxBatchSize int
	// Precision is the unit of timestamps: time.Millisecond (the HTTP
	// default) or time.Second (the telnet default: InfluxDB's and
	// VictoriaMetrics' telnet inputs take seconds only). It applies to
	// $timestamp and to templates without "timestamp".
	Precision time.Duration
	// Client is the HTTP client; nil: a client of the writer's own, whose
	// idle connections Close closes.
	Client *http.Client
	// Name names the writer in errors; default "opentsdb"
	// ("opentsdb(telnet)" for telnet).
	Name string
}

func (o *Options) orDefaults(prec time.Duration) (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.MaxBatchSize <= 0 {
		c.MaxBatchSize = 20
	}
	if c.Precision <= 0 {
		c.Precision = prec
	}
	if c.Precision != time.Second && c.Precision != time.Millisecond {
		return c, fmt.Errorf("precision %v: OpenTSDB takes seconds or milliseconds", c.Precision)
	}
	if c.SyncTimeout < 0 {
		return c, fmt.Errorf("sync timeout %v is negative", c.SyncTimeout)
	}
	return c, nil
}

// Writer writes messages to OpenTSDB's HTTP /api/put as the data points
// its templates render. It is a publish-only persist.Store, safe for
// concurrent use.
type Writer struct {
	persist.Unsupported
	tsdb.Reporter

	kit    *storekit.Kit
	set    *tsdb.Set[tsdb.OpenTSDB]
	opts   Options
	points tsdb.PointOptions
	client *http.Client
	own    bool
	put    string // the /api/put URL with its query
	base   string
}

var (
	_ persist.Store          = (*Writer)(nil)
	_ persist.EventSupporter = (*Writer)(nil)
	_ persist.Pinger         = (*Writer)(nil)
	_ persist.Closer         = (*Writer)(nil)
)

// New returns a writer to the OpenTSDB HTTP API at serverURL (such as
// http://localhost:4242) writing the data points set renders. It does not
// connect: Ping checks the server.
func New(serverURL string, set *tsdb.Set[tsdb.OpenTSDB], opts *Options) (*Writer, error) {
	name := "opentsdb"
	if opts != nil && opts.Name != "" {
		name = opts.Name
	}
	bad := func(format string, args ...any) error {
		return &persist.Error{Store: name, Op: "New", Kind: persist.ErrInvalid, Err: fmt.Errorf(format, args...)}
	}
	o, err := opts.orDefaults(time.Millisecond)
	if err != nil {
		return nil, bad("%v", err)
	}
	o.Name = name
	if set == nil {
		return nil, bad("no templates")
	}
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, bad("server URL %q: want http://host:port or https://host:port", persist.Redact(serverURL))
	}
	base := strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	var q []string
	for _, f := range []struct {
		on   bool
		name string
	}{{o.Summary, "summary"}, {o.Details, "details"}, {o.Sync, "sync"}} {
		if f.on {
			q = append(q, f.name)
		}
	}
	if o.Sync && o.SyncTimeout > 0 {
		q = append(q, "sync_timeout="+strconv.FormatInt(o.SyncTimeout.Milliseconds(), 10))
	}
	put := base + "/api/put"
	if len(q) > 0 {
		put += "?" + strings.Join(q, "&")
	}
	w := &Writer{set: set, opts: o, points: tsdb.PointOptions{Precision: o.Precision}, put: put, base: base, client: o.Client}
	if w.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		w.client, w.own = &http.Client{Transport: t}, true
	}
	w.kit = storekit.New(name, persist.Limits{}, nil)
	return w, nil
}

// Events returns persist.OnPublish.
func (w *Writer) Events() persist.Event { return persist.OnPublish }

// points is a Publish call's rendered data points.
type points struct {
	buf  []byte
	ends []int
}

var buffers = sync.Pool{New: func() any { return new(points) }}

func getPoints() *points {
	p := buffers.Get().(*points)
	p.buf, p.ends = p.buf[:0], p.ends[:0]
	return p
}

func putPoints(p *points) {
	if cap(p.buf) <= 16<<20 {
		buffers.Put(p)
	}
}

// Publish writes the data points the templates render for msgs, at most
// MaxBatchSize per request. A message that does not fit a template is
// skipped for it (see the tsdb package doc) and is not an error. Points
// the server refuses (HTTP 400, or a summary counting failed points) are
// an error matching persist.ErrInvalid, not retryable, naming them; a
// server that cannot be reached or fails (5xx, 429, 404) is retryable and
// matches persist.ErrUnavailable.
func (w *Writer) Publish(ctx context.Context, msgs ...*persist.Message) error {
	msgs, err := w.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	p := getPoints()
	defer putPoints(p)
	tsdb.Render(&w.Reporter, w.set, msgs, func(s *tsdb.Scope, t *tsdb.OpenTSDB) (int, error) {
		before := len(p.ends)
		var err error
		p.buf, p.ends, err = t.AppendJSON(p.buf, s, &w.points, p.ends)
		return len(p.ends) - before, err
	})
	var refused []error
	body := make([]byte, 0, 512)
	for from := 0; from < len(p.ends); from += w.opts.MaxBatchSize {
		to := min(from+w.opts.MaxBatchSize, len(p.ends))
		start := 0
		if from > 0 {
			start = p.ends[from-1]
		}
		// The points end with a comma each: [p1,p2,…,pn] without the last.
		body = append(append(body[:0], '['), p.buf[start:p.ends[to-1]-1]...)
		body = append(body, ']')
		err := w.post(ctx, body, to-from)
		switch {
		case err == nil:
		case errors.Is(err, persist.ErrInvalid):
			refused = append(refused, err)
		default:
			return w.kit.Fail(ctx, "Publish", err)
		}
	}
	if len(refused) > 0 {
		return w.kit.Fail(ctx, "Publish", &persist.Error{Kind: persist.ErrInvalid, Err: errors.Join(refused...)})
	}
	return nil
}

// ServerError is an error answer of the server, or a summary counting
// refused points.
type ServerError struct {
	// Status is the HTTP status code.
	Status int
	// Success and Failed are the summary's counts (0 without one).
	Success, Failed int
	// Message is the server's error message; Points the refused points
	// and why, as Details reports them.
	Message string
	Points  []string
}

func (e *ServerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Failed > 0 {
		fmt.Fprintf(&b, ": %d of %d points failed", e.Failed, e.Failed+e.Success)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	const show = 5
	for i, p := range e.Points {
		if i == show {
			fmt.Fprintf(&b, "; and %d more", len(e.Points)-show)
			break
		}
		b.WriteString("; ")
		b.WriteString(p)
	}
	return b.String()
}

// putAnswer is /api/put's JSON answer: a summary (and details), or an
// error.
type putAnswer struct {
	Success *int `json:"success"`
	Failed  int  `json:"failed"`
	Errors  []struct {
		Datapoint json.RawMessage `json:"datapoint"`
		Error     string          `json:"error"`
	} `json:"errors"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Details string `json:"details"`
	} `json:"error"`
}

// answerError reads an /api/put answer of status with body: nil when it
// reports success, else the error.
func answerError(status int, body []byte) error {
	se := &ServerError{Status: status}
	var a putAnswer
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &a) == nil {
		if a.Success != nil {
			se.Success = *a.Success
		}
		se.Failed = a.Failed
		for _, e := range a.Errors {
			se.Points = append(se.Points, fmt.Sprintf("%s: %s", e.Datapoint, e.Error))
		}
		if a.Error != nil {
			se.Message = a.Error.Message
			if a.Error.Details != "" {
				se.Message += " (" + a.Error.Details + ")"
			}
		}
	} else if s := strings.TrimSpace(string(body)); s != "" && status/100 != 2 {
		se.Message = s
	}
	switch {
	case status/100 == 2 && se.Failed == 0:
		return nil
	case status/100 == 2, status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge:
		return &persist.Error{Kind: persist.ErrInvalid, Err: se}
	case status == http.StatusTooManyRequests, status == http.StatusNotFound, status >= 500:
		return &persist.Error{Kind: persist.ErrUnavailable, Err: se, Retryable: true}
	}
	return &persist.Error{Err: se}
}

// post sends one request of n points.
func (w *Writer) post(ctx context.Context, body []byte, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.put, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true}
	}
	if err := answerError(resp.StatusCode, b); err != nil {
		err.(*persist.Error).What = fmt.Sprintf("%d points", n)
		return err
	}
	return nil
}

// Ping checks that the server answers HTTP (GET /api/version; any answer
// but a 5xx counts, as servers that only take puts answer it 404).
func (w *Writer) Ping(ctx context.Context) error {
	if err := w.kit.Ping(ctx); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.base+"/api/version", nil)
	if err != nil {
		return w.kit.Fail(ctx, "Ping", err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return w.kit.Fail(ctx, "Ping", &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true})
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 500 {
		return w.kit.Fail(ctx, "Ping", &persist.Error{Kind: persist.ErrUnavailable, Err: &ServerError{Status: resp.StatusCode}, Retryable: true})
	}
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
