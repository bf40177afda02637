package opentsdb

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

// TelnetWriter writes messages to OpenTSDB's telnet interface as "put"
// lines, over one TCP connection it dials when first needed and again
// after an error. The protocol answers only errors, and asynchronously: a
// refused point is not an error of Publish (the writer counts the error
// lines the server sends, see ServerErrors). It is a publish-only
// persist.Store, safe for concurrent use.
type TelnetWriter struct {
	persist.Unsupported
	tsdb.Reporter

	kit    *storekit.Kit
	set    *tsdb.Set[tsdb.OpenTSDB]
	opts   Options
	points tsdb.PointOptions
	addr   string
	dialer net.Dialer

	mu   sync.Mutex // serializes writes; guards conn
	conn *conn

	serverErrors atomic.Uint64
	lastError    atomic.Pointer[string]
}

var (
	_ persist.Store          = (*TelnetWriter)(nil)
	_ persist.EventSupporter = (*TelnetWriter)(nil)
	_ persist.Pinger         = (*TelnetWriter)(nil)
	_ persist.Closer         = (*TelnetWriter)(nil)
)

// NewTelnet returns a writer to the OpenTSDB telnet interface at addr
// (host:port) writing the data points set renders. Of opts, Precision
// (default time.Second) and Name apply. It does not connect: Ping and the
// first Publish do.
func NewTelnet(addr string, set *tsdb.Set[tsdb.OpenTSDB], opts *Options) (*TelnetWriter, error) {
	name := "opentsdb(telnet)"
	if opts != nil && opts.Name != "" {
		name = opts.Name
	}
	o, err := opts.orDefaults(time.Second)
	if err != nil {
		return nil, &persist.Error{Store: name, Op: "NewTelnet", Kind: persist.ErrInvalid, Err: err}
	}
	o.Name = name
	if set == nil {
		return nil, &persist.Error{Store: name, Op: "NewTelnet", Kind: persist.ErrInvalid, Err: fmt.Errorf("no templates")}
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, &persist.Error{Store: name, Op: "NewTelnet", Kind: persist.ErrInvalid, Err: err}
	}
	return &TelnetWriter{kit: storekit.New(name, persist.Limits{}, nil), set: set, opts: o,
		points: tsdb.PointOptions{Precision: o.Precision}, addr: addr}, nil
}

// Events returns persist.OnPublish.
func (w *TelnetWriter) Events() persist.Event { return persist.OnPublish }

// ServerErrors returns the number of lines the server sent back (the
// telnet interface answers only errors, such as "put: illegal argument:
// …") and the last of them.
func (w *TelnetWriter) ServerErrors() (uint64, string) {
	last := ""
	if p := w.lastError.Load(); p != nil {
		last = *p
	}
	return w.serverErrors.Load(), last
}

// conn is a connection to the server; dead is set once the server closed
// it (its reader saw the end), so that the next write dials anew instead
// of writing into a connection whose end is gone.
type conn struct {
	net.Conn
	dead atomic.Bool
}

// connect returns the connection, dialing it if there is none or the
// server closed it; w.mu is held.
func (w *TelnetWriter) connect(ctx context.Context) (*conn, error) {
	if w.conn != nil && !w.conn.dead.Load() {
		return w.conn, nil
	}
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	nc, err := w.dialer.DialContext(ctx, "tcp", w.addr)
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc}
	w.conn = c
	go w.drain(c)
	return c, nil
}

// drain reads what the server sends on c (error lines) until c closes.
func (w *TelnetWriter) drain(c *conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if len(line) > 0 {
			w.serverErrors.Add(1)
			w.lastError.Store(&line)
		}
		if err != nil {
			c.dead.Store(true)
			return
		}
	}
}

// Publish writes the put lines the templates render for msgs. A message
// that does not fit a template is skipped for it (see the tsdb package
// doc). A failure to connect or write closes the connection and is
// retryable (persist.ErrUnavailable); some of the lines may have been
// written, and writing them again stores the same data points.
func (w *TelnetWriter) Publish(ctx context.Context, msgs ...*persist.Message) error {
	msgs, err := w.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	p := getPoints()
	defer putPoints(p)
	tsdb.Render(&w.Reporter, w.set, msgs, func(s *tsdb.Scope, t *tsdb.OpenTSDB) (int, error) {
		before := len(p.ends)
		var err error
		p.buf, p.ends, err = t.AppendPuts(p.buf, s, &w.points, p.ends)
		return len(p.ends) - before, err
	})
	if len(p.buf) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kit.Closed() {
		return w.kit.Enter(ctx, "Publish")
	}
	c, err := w.connect(ctx)
	if err != nil {
		return w.kit.Fail(ctx, "Publish", &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true})
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
	} else {
		_ = c.SetWriteDeadline(time.Time{})
	}
	if _, err := c.Write(p.buf); err != nil {
		c.Close()
		w.conn = nil
		return w.kit.Fail(ctx, "Publish", &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true})
	}
	return nil
}

// Ping checks that the server accepts TCP connections (it dials one and
// closes it).
func (w *TelnetWriter) Ping(ctx context.Context) error {
	if err := w.kit.Ping(ctx); err != nil {
		return err
	}
	c, err := w.dialer.DialContext(ctx, "tcp", w.addr)
	if err != nil {
		return w.kit.Fail(ctx, "Ping", &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true})
	}
	return c.Close()
}

// Close closes the connection; later calls fail with persist.ErrClosed.
func (w *TelnetWriter) Close() error {
	if !w.kit.Close() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		err := w.conn.Close()
		w.conn = nil
		return err
	}
	return nil
}
