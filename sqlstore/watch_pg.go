package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// PostgreSQL's watch: LISTEN/NOTIFY.
//
// A watch listens, on a connection of the pool it holds for its life, on
// a channel of its own (mqtt_w_<16 hex digits>) and on the clients'
// channel (the client table's name and "_notice"). Its filters are rows
// of the watch table (channel, topic = the filter, beat). Publishers keep
// a cached index of that table (a notifier) and notify, in the publish
// statement, each channel with a filter matching a topic of the batch,
// once per topic: only the nodes that watch a topic hear of it.
//
// The cache follows the table by a version: the seq of the counter row
// of the empty topic (no topic name is empty), which every Add moves up
// first in its transaction, so that Adds commit in version order and the
// watch rows they insert have ids in that order too; a publisher reads
// the version in its publish statement and, when its cache is older,
// loads the rows added since (id > the highest it has) and sends the
// notifications it owed, after the commit. An Add then waits, with LOCK
// TABLE ... IN SHARE MODE on the counter table, for the publish
// transactions in flight (they hold ROW EXCLUSIVE on it): every publish
// that did not see the Add's version has committed before Add returns,
// so the fetch that follows it reads its messages. Removed filters stay
// in the caches until their next full load (every fullLoadEvery) and
// cost a notification that the watch drops.

const (
	// fullLoadEvery is how often a publisher's cache of the watch table
	// is loaded whole (dropping the filters removed since).
	fullLoadEvery = 30 * time.Second
	// beatEvery is how often a watch marks its rows alive; rows not
	// marked for deadAfter are a dead watch's and are deleted.
	beatEvery = 15 * time.Second
	deadAfter = time.Minute
)

// notifier is a publisher's cache of the watch table.
type notifier struct {
	mu      sync.Mutex
	version int64 // -1 before the first load
	maxID   int64
	loaded  time.Time
	ix      *topic.Index[string] // filter → channel
	have    map[[2]string]bool   // (channel, filter) pairs in ix
}

func newNotifier() *notifier {
	return &notifier{version: -1, ix: topic.NewIndex[string](), have: map[[2]string]bool{}}
}

// notePlan is what one Publish notifies: the (channel, payload) pairs
// and the cache version they were computed at.
type notePlan struct {
	version  int64
	chans    []string
	payloads []string
}

// notePayload is the payload of a topic's notification: the topic and
// the node that stored its messages, as a JSON array.
func notePayload(t topicAdd) string {
	b, _ := json.Marshal([2]string{t.topic, t.node})
	return string(b)
}

// plan returns the notifications of a batch of topics from the cache,
// loading the cache whole first when it is empty or old.
func (n *notifier) plan(ctx context.Context, s *Store, topics []topicAdd) notePlan {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.version < 0 || time.Since(n.loaded) > fullLoadEvery {
		_ = n.load(ctx, s, true)
	}
	p := notePlan{version: n.version}
	n.pairs(topics, func(ch, payload string) {
		p.chans = append(p.chans, ch)
		p.payloads = append(p.payloads, payload)
	})
	return p
}

// pairs calls fn for each channel whose filters match a topic, once per
// channel and topic.
func (n *notifier) pairs(topics []topicAdd, fn func(ch, payload string)) {
	if n.ix.Len() == 0 {
		return
	}
	for _, t := range topics {
		var chans map[string]bool
		payload := ""
		n.ix.Each(t.topic, func(_ string, ch string) bool {
			if chans[ch] {
				return true
			}
			if chans == nil {
				chans = map[string]bool{}
				payload = notePayload(t)
			}
			chans[ch] = true
			fn(ch, payload)
			return true
		})
	}
}

// after sends, once a Publish committed, the notifications its plan
// lacked: when the publish statement saw a watch version newer than the
// plan's, the cache loads the rows added since and the topics' new pairs
// are notified. A failure costs only latency: the watches read the
// messages at their next fetch.
func (n *notifier) after(ctx context.Context, s *Store, version int64, topics []topicAdd, plan *notePlan) {
	if version == plan.version {
		return
	}
	n.mu.Lock()
	if n.version < version {
		_ = n.load(ctx, s, n.version < 0)
	}
	sent := make(map[[2]string]bool, len(plan.chans))
	for i, ch := range plan.chans {
		sent[[2]string{ch, plan.payloads[i]}] = true
	}
	var chans, payloads []string
	n.pairs(topics, func(ch, payload string) {
		if !sent[[2]string{ch, payload}] {
			chans = append(chans, ch)
			payloads = append(payloads, payload)
		}
	})
	n.mu.Unlock()
	if len(chans) > 0 {
		_, _ = s.db.ExecContext(ctx, s.q.notify, chans, payloads)
	}
}

// load reads the watch version and then the watch rows (all of them, or
// those added since the last load), under n.mu.
func (n *notifier) load(ctx context.Context, s *Store, full bool) error {
	var version int64
	if err := s.db.QueryRowContext(ctx, s.q.watchVersion).Scan(&version); err != nil {
		return err
	}
	from := n.maxID
	if full {
		from = 0
	}
	rows, err := s.db.QueryContext(ctx, s.q.watchRows, from)
	if err != nil {
		return err
	}
	defer rows.Close()
	ix, have, maxID := n.ix, n.have, n.maxID
	if full {
		ix, have, maxID = topic.NewIndex[string](), map[[2]string]bool{}, 0
	}
	for rows.Next() {
		var id int64
		var ch, f string
		if err := rows.Scan(&id, &ch, &f); err != nil {
			return err
		}
		maxID = max(maxID, id)
		k := [2]string{ch, f}
		if have[k] || ix.Add(f, ch) != nil {
			continue
		}
		have[k] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	n.ix, n.have, n.maxID, n.version = ix, have, maxID, version
	if full {
		n.loaded = time.Now()
	}
	return nil
}

// clientChannel is the channel of the clients' notices.
func (s *Store) clientChannel() string { return s.t.client + "_notice" }

// clientPayload is the payload of a client's notice.
type clientPayload struct {
	Client  string `json:"client"`
	Node    string `json:"node,omitempty"`
	At      string `json:"at,omitempty"`
	Offline bool   `json:"offline,omitempty"`
}

func clientNote(c *persist.Client) string {
	p := clientPayload{Client: c.ID, Node: c.Node, Offline: !c.Online}
	if c.Online && !c.OnlineAt.IsZero() {
		p.At = c.OnlineAt.UTC().Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// listen is a PostgreSQL watch.
type listen struct {
	w       *watch
	s       *Store
	channel string
	ready   chan error    // the first LISTEN's outcome
	stopped chan struct{} // closed when listen returned
}

func (s *Store) listenWatch(ctx context.Context, w *watch) (watchBackend, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &listen{w: w, s: s, channel: "mqtt_w_" + hex.EncodeToString(b[:]), ready: make(chan error, 1), stopped: make(chan struct{})}
	go func() {
		defer close(l.stopped)
		l.listen(ctx)
	}()
	select {
	case err := <-l.ready:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		<-l.stopped
		return nil, ctx.Err()
	}
	return l, nil
}

// run marks the watch's rows alive and deletes dead watches' rows until
// ctx ends (the listening runs in listen, started by listenWatch).
func (l *listen) run(ctx context.Context) {
	defer func() { <-l.stopped }()
	t := time.NewTicker(beatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.beat(ctx)
	}
}

// beat marks the rows alive, adds them again when some are gone (the
// watch was taken for dead), and deletes the rows of dead watches.
func (l *listen) beat(ctx context.Context) {
	s := l.s
	res, err := s.db.ExecContext(ctx, s.q.watchBeat, l.channel)
	if err != nil {
		return
	}
	n, _ := res.RowsAffected()
	l.w.mu.Lock()
	filters := l.w.filters.List()
	l.w.mu.Unlock()
	if int(n) < len(filters) {
		l.w.op.Lock()
		_ = l.add(ctx, filters)
		l.w.op.Unlock()
	}
	_, _ = s.db.ExecContext(ctx, s.q.watchDead)
}

// listen holds a connection, listens on the watch's channels and calls
// fn for each notification until ctx ends; when the connection breaks it
// takes another, adds the watch's filters again (rows may have been
// taken for dead) and calls fn with an empty Notice.
func (l *listen) listen(ctx context.Context) {
	first := true
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		listened, err := l.session(ctx, first)
		if first {
			first = false
			if err != nil && !listened {
				l.ready <- err
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if listened {
			wait = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// errListen tells that the driver connection is not pgx's.
var errListen = errors.New("the database/sql driver is not pgx's stdlib (github.com/jackc/pgx/v5/stdlib): no LISTEN")

// session is one connection's life: LISTEN, then notifications until ctx
// ends or the connection breaks. It reports whether it listened.
func (l *listen) session(ctx context.Context, first bool) (listened bool, err error) {
	conn, err := l.s.db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errListen
		}
		pc := sc.Conn()
		for _, ch := range []string{l.channel, l.s.clientChannel()} {
			if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
				return driver.ErrBadConn
			}
		}
		listened = true
		if first {
			l.ready <- nil
		} else {
			l.w.mu.Lock()
			filters := l.w.filters.List()
			l.w.mu.Unlock()
			if len(filters) > 0 {
				l.w.op.Lock()
				_ = l.add(ctx, filters)
				l.w.op.Unlock()
			}
			l.w.fn(persist.Notice{})
		}
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				// Not pooled again: it may be listening still.
				return driver.ErrBadConn
			}
			l.deliver(n.Channel, n.Payload)
		}
	})
	return listened, err
}

// deliver calls fn for one notification.
func (l *listen) deliver(channel, payload string) {
	if channel == l.s.clientChannel() {
		var p clientPayload
		if json.Unmarshal([]byte(payload), &p) != nil || p.Client == "" {
			return
		}
		n := persist.Notice{Client: p.Client, Node: p.Node, Offline: p.Offline}
		if p.At != "" {
			n.At, _ = time.Parse(time.RFC3339Nano, p.At)
		}
		l.w.fn(n)
		return
	}
	var tn [2]string
	if json.Unmarshal([]byte(payload), &tn) != nil {
		return
	}
	l.w.mu.Lock()
	ok := l.w.matches(tn[0])
	l.w.mu.Unlock()
	if ok {
		l.w.fn(persist.Notice{Topic: tn[0], Node: tn[1]})
	}
}

// add inserts the watch's rows of filters after moving the watch version
// up, and waits for the publishes in flight (see the top of this file).
func (l *listen) add(ctx context.Context, filters []string) error {
	s := l.s
	err := s.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q.watchBump); err != nil {
			return err
		}
		for rest := filters; len(rest) > 0; {
			n := min(len(rest), 500)
			var q strings.Builder
			q.WriteString("INSERT INTO " + s.d.quote(s.t.watch) + " (channel, topic, beat) VALUES ")
			args := make([]any, 0, 2*n)
			for i, f := range rest[:n] {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(?, ?, " + s.d.now() + ")")
				args = append(args, l.channel, f)
			}
			q.WriteString(" ON CONFLICT (channel, topic) DO UPDATE SET beat = excluded.beat")
			if _, err := tx.ExecContext(ctx, s.d.rebind(q.String()), args...); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Waiting is all this transaction does: a lock it could not take in
	// time leaves the watch working, a publish in flight may then be
	// heard of late.
	_ = s.inTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '2s'"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "LOCK TABLE "+s.d.quote(s.t.topic)+" IN SHARE MODE")
		return err
	})
	return nil
}

// remove deletes the watch's rows of filters.
func (l *listen) remove(ctx context.Context, filters []string) error {
	s := l.s
	for len(filters) > 0 {
		n := min(len(filters), 500)
		args := make([]any, 0, n+1)
		args = append(args, l.channel)
		for _, f := range filters[:n] {
			args = append(args, f)
		}
		if _, err := s.db.ExecContext(ctx, s.d.rebind("DELETE FROM "+s.d.quote(s.t.watch)+" WHERE channel = ? AND topic IN "+placeholders(n)), args...); err != nil {
			return err
		}
		filters = filters[n:]
	}
	return nil
}

// close deletes the watch's rows.
func (l *listen) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = l.s.db.ExecContext(ctx, l.s.d.rebind("DELETE FROM "+l.s.d.quote(l.s.t.watch)+" WHERE channel = ?"), l.channel)
}
