package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

var _ persist.Watcher = (*Store)(nil)

// pollMargin is how far back, before the database's clock at its last
// poll, a polling watch reads the counters and clients that changed: a
// transaction that commits later than that after it set changed goes
// unnoticed (Publish sets changed again after such a commit, see
// touchAfter).
const pollMargin = time.Second

// seenFor is how long a polling watch remembers a topic's last position
// (to tell which node a notice comes from) after the topic last changed.
const seenFor = time.Minute

// Watch starts a watch (persist.Watcher) of the messages stored through
// any store on the database and of the clients connecting: on PostgreSQL
// with LISTEN/NOTIFY (a connection of the pool held by the watch; the
// publishers notify only the watches with a matching filter), on SQLite
// and MySQL by polling every Options.PollInterval. See the package doc's
// Watch. The watch ends when ctx ends, at its Close or at the store's.
func (s *Store) Watch(ctx context.Context, fn func(persist.Notice)) (persist.Watch, error) {
	const op = "Watch"
	if err := s.kit.Enter(ctx, op); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, s.kit.Error(op, persist.ErrInvalid, "", errString("fn is nil"))
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watch{s: s, fn: fn, cancel: cancel, done: make(chan struct{})}
	var err error
	if s.d.listens() {
		w.b, err = s.listenWatch(wctx, w)
	} else {
		w.b, err = s.pollWatch(wctx, w)
	}
	if err != nil {
		cancel()
		return nil, s.kit.Fail(ctx, op, err)
	}
	closed := !s.watches.Add(s.kit, w)
	go func() {
		w.b.run(wctx)
		close(w.done)
		w.Close() // when ctx ended: the watch's rows and entry go too
	}()
	if closed {
		w.Close()
		return nil, s.kit.Enter(ctx, op)
	}
	return w, nil
}

// watchBackend is how a watch hears of changes: listen.go (PostgreSQL)
// or the polling below.
type watchBackend interface {
	// add makes the database side watch filters, newly watched.
	add(ctx context.Context, filters []string) error
	// remove stops watching filters, no longer watched.
	remove(ctx context.Context, filters []string) error
	// run delivers notices until ctx ends.
	run(ctx context.Context)
	// close releases what the watch holds, after run returned.
	close()
}

// watch is a persist.Watch: the filters with their counts, and an index
// of them to match topics against.
type watch struct {
	s  *Store
	fn func(persist.Notice)
	b  watchBackend

	// op serializes Add and Remove, so that a filter is watched by the
	// database before a second Add of it returns.
	op      sync.Mutex
	mu      sync.Mutex
	filters storekit.Filters

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Add starts watching filters (counted).
func (w *watch) Add(ctx context.Context, filters ...string) error {
	const op = "Watch.Add"
	if err := w.enter(ctx, op, filters); err != nil {
		return err
	}
	w.op.Lock()
	defer w.op.Unlock()
	w.mu.Lock()
	added := w.filters.Add(filters...)
	w.mu.Unlock()
	if len(added) == 0 {
		return nil
	}
	if err := w.b.add(ctx, added); err != nil {
		w.mu.Lock()
		w.filters.Remove(filters...)
		w.mu.Unlock()
		return w.s.kit.Fail(ctx, op, err)
	}
	return nil
}

// Remove stops watching filters (one count each).
func (w *watch) Remove(ctx context.Context, filters ...string) error {
	const op = "Watch.Remove"
	if err := w.enter(ctx, op, nil); err != nil {
		return err
	}
	w.op.Lock()
	defer w.op.Unlock()
	w.mu.Lock()
	gone := w.filters.Remove(filters...)
	w.mu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	return w.s.kit.Fail(ctx, op, w.b.remove(ctx, gone))
}

// enter returns the error that stops op with filters: a done context, an
// invalid filter (see storekit.Kit.Watch), or ErrClosed after the watch
// or the store was closed.
func (w *watch) enter(ctx context.Context, op string, filters []string) error {
	if err := w.s.kit.Watch(ctx, op, filters); err != nil {
		return err
	}
	select {
	case <-w.done:
		return w.s.kit.Error(op, persist.ErrClosed, "", nil)
	default:
		return nil
	}
}

// Close ends the watch and releases what it holds.
func (w *watch) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		<-w.done
		w.op.Lock()
		w.b.close()
		w.op.Unlock()
		w.s.watches.Drop(w)
	})
	return nil
}

// matches reports whether a watched filter matches the topic name.
func (w *watch) matches(name string) bool { return w.filters.Matches(name) }

// topicNotice calls fn for stored messages of a topic when it is watched.
func (w *watch) topicNotice(name, node string) {
	if name != "" && w.matches(name) {
		w.fn(persist.Notice{Topic: name, Node: node})
	}
}

// pollWatch is the watch of the databases without notifications: every
// PollInterval one query reads the counters (mqtt_topic) and the online
// clients (mqtt_client) whose changed column is after the database's
// clock at the previous poll less pollMargin.
type pollWatch struct {
	w      *watch
	every  time.Duration
	since  time.Time // the database's clock at the previous poll
	topics map[string]seenTopic
	conns  map[string]time.Time // client ID → changed of its last notice
}

type seenTopic struct {
	seq     int64
	changed time.Time
}

func (s *Store) pollWatch(ctx context.Context, w *watch) (watchBackend, error) {
	p := &pollWatch{w: w, every: s.opt.PollInterval, topics: map[string]seenTopic{}, conns: map[string]time.Time{}}
	var now any
	if err := s.db.QueryRowContext(ctx, "SELECT "+s.d.now()).Scan(&now); err != nil {
		return nil, err
	}
	t, err := toTime(now)
	if err != nil {
		return nil, err
	}
	p.since = t
	// What changed just before the watch started is not news.
	if err := p.poll(ctx, false); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pollWatch) add(context.Context, []string) error    { return nil }
func (p *pollWatch) remove(context.Context, []string) error { return nil }
func (p *pollWatch) close()                                 {}

func (p *pollWatch) run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.poll(ctx, true); err != nil {
			failed = true
			continue
		}
		if failed {
			// Anything may have been missed while the database was away.
			failed = false
			p.w.fn(persist.Notice{})
		}
	}
}

// poll reads what changed since the previous poll and, with notify, calls
// fn for it.
func (p *pollWatch) poll(ctx context.Context, notify bool) error {
	s := p.w.s
	from := s.d.timeArg(p.since.Add(-pollMargin))
	rows, err := s.db.QueryContext(ctx, s.q.poll, from, from, from)
	if err != nil {
		return err
	}
	defer rows.Close()
	type change struct {
		kind        int
		name, node  string
		seq, n      int64
		changed, at time.Time
	}
	var changes []change
	var clock time.Time
	for rows.Next() {
		var c change
		var name, node sql.NullString
		var seq, n sql.NullInt64
		var changed, at any
		if err := rows.Scan(&c.kind, &name, &seq, &node, &n, &changed, &at); err != nil {
			return err
		}
		c.name, c.node, c.seq, c.n = name.String, node.String, seq.Int64, n.Int64
		if c.changed, err = toTime(changed); err == nil {
			c.at, err = toTime(at)
		}
		if err != nil {
			return err
		}
		if c.kind == 2 {
			clock = c.changed
			continue
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	mark := s.taken.mark() // after the read: every Publish it saw began before
	wait := time.Now().Add(spanWait)
	for _, c := range changes {
		switch c.kind {
		case 0:
			prev, ok := p.topics[c.name]
			if ok && c.seq <= prev.seq {
				continue
			}
			p.topics[c.name] = seenTopic{seq: c.seq, changed: c.changed}
			if notify {
				node := ""
				switch {
				case ok && c.seq-prev.seq == c.n || !ok && c.seq == c.n:
					node = c.node // one batch alone moved the counter
				case ok:
					node = s.taken.node(c.name, prev.seq, c.seq, mark, wait) // this store's batches did
				default: // first seen: a counter starts at 0
					node = s.taken.node(c.name, 0, c.seq, mark, wait)
				}
				p.w.topicNotice(c.name, node)
			}
		case 1, 3, 4: // a client online, offline, released by another node
			key := c.name
			if c.kind == 4 {
				key = "\x00" + c.name // no client ID has a NUL
			}
			if prev, ok := p.conns[key]; ok && !c.changed.After(prev) {
				continue
			}
			p.conns[key] = c.changed
			switch {
			case !notify:
			case c.kind == 1:
				p.w.fn(persist.Notice{Client: c.name, Node: c.node, At: c.at})
			default:
				p.w.fn(persist.Notice{Client: c.name, Node: c.node, Offline: true})
			}
		}
	}
	if !clock.IsZero() {
		p.since = clock
	}
	for name, t := range p.topics {
		if t.changed.Before(p.since.Add(-seenFor)) {
			delete(p.topics, name)
		}
	}
	for id, t := range p.conns {
		if t.Before(p.since.Add(-2 * pollMargin)) {
			delete(p.conns, id)
		}
	}
	return nil
}
