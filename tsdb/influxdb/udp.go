package influxdb

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

// UDPWriter writes messages to InfluxDB's UDP listener as the points its
// templates render, as many lines per datagram as fit in MaxPacket. UDP
// has no answer: a point the server refuses, or a datagram lost on the
// way, is not seen (InfluxDB's own caveat of its UDP input); the server
// writes the listener's points to the database its configuration names.
// It is a publish-only persist.Store, safe for concurrent use.
type UDPWriter struct {
	persist.Unsupported
	tsdb.Reporter

	kit  *storekit.Kit
	set  *tsdb.Set[tsdb.Influx]
	opts Options
	line tsdb.LineOptions
	mu   sync.Mutex // serializes writes to conn
	conn net.Conn
}

var (
	_ persist.Store          = (*UDPWriter)(nil)
	_ persist.EventSupporter = (*UDPWriter)(nil)
	_ persist.Closer         = (*UDPWriter)(nil)
)

// NewUDP returns a writer to the InfluxDB UDP listener at addr
// (host:port), writing the points set renders. Of opts, Precision,
// ServerTime, MaxPacket and Name apply; the listener's precision (its
// configuration's "precision") must be the same.
func NewUDP(addr string, set *tsdb.Set[tsdb.Influx], opts *Options) (*UDPWriter, error) {
	o := opts.orDefaults()
	if o.Name == "" {
		o.Name = "influxdb(udp)"
	}
	if set == nil {
		return nil, &persist.Error{Store: o.Name, Op: "NewUDP", Kind: persist.ErrInvalid, Err: fmt.Errorf("no templates")}
	}
	if _, err := precisionParam(o.Precision, false); err != nil {
		return nil, &persist.Error{Store: o.Name, Op: "NewUDP", Kind: persist.ErrInvalid, Err: err}
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, &persist.Error{Store: o.Name, Op: "NewUDP", Kind: persist.ErrInvalid, Err: err}
	}
	return &UDPWriter{
		kit: storekit.New(o.Name, persist.Limits{}, nil), set: set, opts: o, conn: conn,
		line: tsdb.LineOptions{Precision: o.Precision, ServerTime: o.ServerTime},
	}, nil
}

// Events returns persist.OnPublish.
func (w *UDPWriter) Events() persist.Event { return persist.OnPublish }

// Publish sends the points the templates render for msgs, packing whole
// lines into datagrams of at most MaxPacket bytes. A point longer than
// that is skipped (tsdb.TooLarge), like a message that does not fit its
// template (see the tsdb package doc). An error sending (such as the
// "connection refused" a host answers when nothing listens on the port)
// is retryable.
func (w *UDPWriter) Publish(ctx context.Context, msgs ...*persist.Message) error {
	msgs, err := w.kit.Publish(ctx, msgs)
	if err != nil || len(msgs) == 0 {
		return err
	}
	l := buffers.Get().(*lines)
	defer putLines(l)
	l.reset()
	max := w.opts.MaxPacket
	tsdb.Render(&w.Reporter, w.set, msgs, func(s *tsdb.Scope, t *tsdb.Influx) (int, error) {
		mark, marks := len(l.buf), len(l.ends)
		var err error
		l.buf, l.ends, err = t.AppendLines(l.buf, s, &w.line, l.ends)
		if err != nil {
			return 0, err
		}
		prev := mark
		for _, end := range l.ends[marks:] {
			if end-prev > max {
				l.buf, l.ends = l.buf[:mark], l.ends[:marks]
				return 0, tsdb.SkipError(tsdb.TooLarge, fmt.Errorf("a line of %d bytes does not fit in a UDP datagram of %d", end-prev, max))
			}
			prev = end
		}
		return len(l.ends) - marks, nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	for from := 0; from < len(l.ends); {
		start := 0
		if from > 0 {
			start = l.ends[from-1]
		}
		to := from + 1
		for to < len(l.ends) && l.ends[to]-start <= max {
			to++
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := w.conn.Write(l.buf[start:l.ends[to-1]]); err != nil {
			return w.kit.Fail(ctx, "Publish", &persist.Error{Kind: persist.ErrUnavailable, Err: err, Retryable: true})
		}
		from = to
	}
	return nil
}

// Close closes the writer's socket; later calls fail with
// persist.ErrClosed.
func (w *UDPWriter) Close() error {
	if !w.kit.Close() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn.Close()
}
