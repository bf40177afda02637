package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mqttpersist/mqttpersist/persist"
)

// touchAfter is how long a Publish transaction may take from its counter
// update to its commit before Publish sets the counters' changed column
// again, after the commit: the polling watch reads the counters changed
// since its last poll less pollMargin, and a commit later than that
// would go unnoticed.
const touchAfter = pollMargin / 2

// batch is a Publish batch prepared for the counters: the messages in
// the order given, and per topic (in byte order, the order in which
// every writer locks the counter rows, so that none deadlocks) how many
// messages the batch adds.
type batch struct {
	msgs   []*persist.Message
	topics []topicAdd
	// back is, per message, how far below its topic's new counter its
	// position is: the messages of a topic take the positions counter-n+1
	// .. counter in the order of the batch.
	back []int64
	now  time.Time
}

// topicAdd is one topic of a batch: its name, how many messages the batch
// stores for it and the node that published them all ("" when several
// did).
type topicAdd struct {
	topic string
	n     int64
	node  string
}

func newBatch(msgs []*persist.Message, now time.Time) *batch {
	b := &batch{msgs: msgs, back: make([]int64, len(msgs)), now: now}
	idx := make(map[string]int, 4)
	seen := make([]int64, 0, 4)
	for _, m := range msgs {
		i, ok := idx[m.Topic]
		if !ok {
			i = len(b.topics)
			idx[m.Topic] = i
			b.topics = append(b.topics, topicAdd{topic: m.Topic, node: m.Node})
			seen = append(seen, 0)
		}
		b.topics[i].n++
		if b.topics[i].node != m.Node {
			b.topics[i].node = ""
		}
	}
	for j, m := range msgs {
		i := idx[m.Topic]
		seen[i]++
		b.back[j] = b.topics[i].n - seen[i]
	}
	slices.SortFunc(b.topics, func(a, c topicAdd) int { return strings.Compare(a.topic, c.topic) })
	return b
}

// names returns the batch's topics in byte order.
func (b *batch) names() []string {
	out := make([]string, len(b.topics))
	for i, t := range b.topics {
		out[i] = t.topic
	}
	return out
}

// Publish stores the unexpired messages of a batch in one transaction (one
// statement on PostgreSQL), ignoring IDs already stored, or rejects the
// whole batch if a message is invalid. Each message gets its position in
// its topic from the topic's counter, updated in the same transaction
// (see the package doc's Ordering); on PostgreSQL the watches whose
// filters match a topic of the batch are notified at commit.
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	keep, err := s.kit.Publish(ctx, msgs)
	if err != nil || len(keep) == 0 {
		return err
	}
	b := newBatch(keep, time.Now())
	// Chunks by rows and payload bytes.
	var chunks [][2]int
	start, bytes := 0, 0
	for i, m := range keep {
		if i > start && (i-start >= s.opt.BatchRows || bytes+len(m.Payload) > s.opt.BatchBytes) {
			chunks = append(chunks, [2]int{start, i})
			start, bytes = i, 0
		}
		bytes += len(m.Payload)
	}
	chunks = append(chunks, [2]int{start, len(keep)})
	var plan notePlan
	if s.note != nil {
		plan = s.note.plan(ctx, s, b.topics)
	}

	unlock := s.lockWrites()
	defer unlock()
	var version int64
	var slow bool
	for try := 0; ; try++ {
		if s.d.listens() && len(chunks) == 1 {
			version, err = s.publishOne(ctx, b, &plan)
		} else {
			version, slow, err = s.publishTx(ctx, b, chunks, &plan)
		}
		if !isDeadlock(err) || try == 2 {
			break
		}
	}
	if err != nil {
		return s.kit.Fail(ctx, "Publish", err)
	}
	if s.note != nil {
		s.note.after(ctx, s, version, b.topics, &plan)
	}
	if slow {
		s.touch(ctx, b)
	}
	return nil
}

// publishTx writes the batch in one transaction: the counters first (in
// topic order), read back (RETURNING, or a SELECT on MySQL), then each
// chunk's INSERT with the positions they give; on PostgreSQL the
// notifications and the watch version too. It reports whether the commit
// came so late after the counter update that the polling watches may miss
// it (see touchAfter).
func (s *Store) publishTx(ctx context.Context, b *batch, chunks [][2]int, plan *notePlan) (version int64, slow bool, err error) {
	var updated time.Time
	var counters map[string]int64
	if !s.d.listens() {
		defer s.taken.begin()()
	}
	err = s.inTx(ctx, nil, func(tx *sql.Tx) error {
		var err error
		counters, err = s.counters(ctx, tx, b)
		if err != nil {
			return err
		}
		updated = time.Now()
		for _, c := range chunks {
			args, err := s.msgArgs(b, c[0], c[1], counters)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.insertSQL(c[1]-c[0]), args...); err != nil {
				return err
			}
		}
		if !s.d.listens() {
			return nil
		}
		if len(plan.chans) > 0 {
			if _, err := tx.ExecContext(ctx, s.q.notify, plan.chans, plan.payloads); err != nil {
				return err
			}
		}
		return tx.QueryRowContext(ctx, s.q.watchVersion).Scan(&version)
	})
	if err == nil && !s.d.listens() {
		for _, t := range b.topics {
			s.taken.add(t.topic, t.node, counters[t.topic], t.n)
		}
	}
	return version, err == nil && !s.d.listens() && time.Since(updated) > touchAfter, err
}

// counters moves the batch's counters up and returns their new values by
// topic.
func (s *Store) counters(ctx context.Context, tx *sql.Tx, b *batch) (map[string]int64, error) {
	d := s.d
	var rows *sql.Rows
	var err error
	if d.returning() {
		rows, err = tx.QueryContext(ctx, d.rebind(s.counterSQL(len(b.topics), true)), s.counterArgs(b)...)
	} else if len(b.topics) == 1 {
		// One topic (MySQL): the upsert's LAST_INSERT_ID is the counter
		// it updated; a row it inserted holds the batch's count.
		res, err := tx.ExecContext(ctx, d.rebind(s.counterSQL(1, false)), s.counterArgs(b)...)
		if err != nil {
			return nil, err
		}
		t := b.topics[0]
		if n, _ := res.RowsAffected(); n == 1 {
			return map[string]int64{t.topic: t.n}, nil
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		return map[string]int64{t.topic: seq}, nil
	} else {
		if _, err = tx.ExecContext(ctx, d.rebind(s.counterSQL(len(b.topics), false)), s.counterArgs(b)...); err != nil {
			return nil, err
		}
		args := make([]any, 0, len(b.topics))
		for _, t := range b.topics {
			args = append(args, keyArgs(d, t.topic)...)
		}
		rows, err = tx.QueryContext(ctx, s.cached("counters:"+strconv.Itoa(len(b.topics)), func() string {
			in := "topic IN "
			if d.hashKeys() {
				in = hashCol + " IN "
			}
			return d.rebind("SELECT topic, seq FROM " + d.quote(s.t.topic) + " WHERE " + in + placeholders(len(b.topics)))
		}), args...)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]int64, len(b.topics))
	for rows.Next() {
		var name string
		var seq int64
		if err := rows.Scan(&name, &seq); err != nil {
			return nil, err
		}
		out[name] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) != len(b.topics) {
		return nil, errString("counters: read back " + strconv.Itoa(len(out)) + " of " + strconv.Itoa(len(b.topics)) + " topics")
	}
	return out, nil
}

// publishOne writes a batch of one chunk on PostgreSQL in one statement:
// the counter upsert returns each topic's new counter, the INSERT of the
// messages reads it, the notifications go out at commit, and the
// statement returns the watch version it saw. Every column comes as one
// array (see publishCTE), so the statement's text is the same for every
// batch: prepared once per connection, planned once, and its arguments
// are a few arrays rather than fourteen values a message.
func (s *Store) publishOne(ctx context.Context, b *batch, plan *notePlan) (int64, error) {
	nt, nm := len(b.topics), len(b.msgs)
	tTopic, tNode, tN := make([]string, nt), make([]string, nt), make([]int64, nt)
	for i, t := range b.topics {
		tTopic[i], tNode[i], tN[i] = t.topic, t.node, t.n
	}
	strs, ints := make([]string, 7*nm), make([]int32, 3*nm)
	col := func(i int) []string { return strs[i*nm : (i+1)*nm : (i+1)*nm] }
	ids, topics, from, node, user, peer, props := col(0), col(1), col(2), col(3), col(4), col(5), col(6)
	qos, retain, mode := ints[:nm:nm], ints[nm:2*nm:2*nm], ints[2*nm:]
	payload, arrived, expiry := make([][]byte, nm), make([]time.Time, nm), make([]pgtype.Timestamp, nm)
	for j, m := range b.msgs {
		var at time.Time
		var err error
		if payload[j], at, props[j], err = b.row(j); err != nil {
			return 0, err
		}
		ids[j], topics[j], from[j], node[j], user[j], peer[j] = m.ID, m.Topic, m.From, m.Node, m.Username, m.PeerHost
		qos[j], retain[j], mode[j] = int32(m.QoS), int32(boolInt(m.Retain)), int32(m.Mode)
		arrived[j] = at.UTC()
		if !m.Expiry.IsZero() {
			expiry[j] = pgtype.Timestamp{Time: m.Expiry.UTC(), Valid: true}
		}
	}
	// In msgCols's order, then each message's back.
	args := []any{tTopic, tN, tNode, ids, topics, from, node, qos, retain, payload, arrived, expiry, mode, user, peer, props, b.back}
	notify := len(plan.chans) > 0
	if notify {
		args = append(args, plan.chans, plan.payloads)
	}
	var version int64
	err := s.db.QueryRowContext(ctx, s.publishCTE(notify), args...).Scan(&version)
	return version, err
}

// counterArgs are the arguments of counterSQL for b.
func (s *Store) counterArgs(b *batch) []any {
	args := make([]any, 0, len(b.topics)*4)
	for _, t := range b.topics {
		args = append(args, t.topic, t.n, nullStr(t.node), t.n)
	}
	return args
}

// msgArgs are the arguments of insertSQL's rows of msgs[from:to]: the
// columns of msgCols, then the position (counter less back).
func (s *Store) msgArgs(b *batch, from, to int, counters map[string]int64) ([]any, error) {
	args := make([]any, 0, (to-from)*(nMsgCols+1))
	for j := from; j < to; j++ {
		m := b.msgs[j]
		payload, at, props, err := b.row(j)
		if err != nil {
			return nil, err
		}
		args = append(args, m.ID, m.Topic, nullStr(m.From), nullStr(m.Node), int(m.QoS), boolInt(m.Retain), payload,
			s.d.timeArg(at), s.nullTime(m.Expiry), int(m.Mode), nullStr(m.Username), nullStr(m.PeerHost), nullStr(props),
			counters[m.Topic]-b.back[j])
	}
	return args, nil
}

// row returns what message j stores besides its own fields: its payload
// (empty, not NULL, when it has none), its time (the batch's when zero)
// and its properties encoded ("" when none).
func (b *batch) row(j int) (payload []byte, at time.Time, props string, err error) {
	m := b.msgs[j]
	payload = m.Payload
	if payload == nil {
		payload = []byte{}
	}
	at = m.Time
	if at.IsZero() {
		at = b.now
	}
	p, err := encodeProps(&m.Props)
	if p != nil {
		props = p.(string)
	}
	return payload, at, props, err
}

// touch sets the changed column of the batch's counters to the database's
// clock again, after a commit that came late (see touchAfter).
func (s *Store) touch(ctx context.Context, b *batch) {
	names := b.names()
	for len(names) > 0 {
		n := min(len(names), 500)
		var q strings.Builder
		q.WriteString("UPDATE " + s.d.quote(s.t.topic) + " SET changed = " + s.d.now() + " WHERE ")
		var args []any
		if s.d.hashKeys() {
			q.WriteString(hashCol + " IN " + placeholders(n))
		} else {
			q.WriteString("topic IN " + placeholders(n))
		}
		for _, t := range names[:n] {
			args = append(args, keyArgs(s.d, t)...)
		}
		// A hint only: the messages are stored, and a watch that misses
		// them fetches them at its next fetch.
		_, _ = s.db.ExecContext(ctx, s.d.rebind(q.String()), args...)
		names = names[n:]
	}
}

// counterSQL returns the upsert of n topic counters (in the order given),
// each moved up by its batch's count; with returning it returns every
// topic's new counter (see dialect.returning).
func (s *Store) counterSQL(n int, returning bool) string {
	return s.cached("counter:"+strconv.Itoa(n)+":"+strconv.FormatBool(returning), func() string {
		d := s.d
		// changed is for the polling watch: where the database notifies,
		// the counter's update changes no indexed column (a HOT update
		// on PostgreSQL).
		cols, row := "topic, seq, node, n", "(?, ?, ?, ?)"
		if !d.listens() {
			cols, row = "topic, seq, changed, node, n", "(?, ?, "+d.now()+", ?, ?)"
		}
		var q strings.Builder
		q.WriteString("VALUES ")
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(row)
		}
		return s.counterUpsert(cols, q.String(), returning)
	})
}

// counterUpsert is the upsert of counterSQL with its rows from src.
func (s *Store) counterUpsert(cols, src string, returning bool) string {
	d := s.d
	set := ""
	if !d.listens() {
		set = ", changed = " + d.now()
	}
	q := "INSERT INTO " + d.quote(s.t.topic) + " (" + cols + ") " + src +
		d.onConflict([]string{"topic"}, "seq = "+d.lastInsertID(d.current(s.t.topic, "seq")+" + "+d.excluded("seq"))+
			set+", node = "+d.excluded("node")+", n = "+d.excluded("n"))
	if returning {
		q += " RETURNING topic, seq"
	}
	return q
}

// insertSQL returns the INSERT of n messages with their positions.
func (s *Store) insertSQL(n int) string {
	return s.cached("insert:"+strconv.Itoa(n), func() string {
		d := s.d
		return d.rebind("INSERT INTO " + d.quote(s.t.msg) + " (" + msgCols + ", seq) VALUES " + rowsOf(n, nMsgCols+1) +
			d.onConflict([]string{"msgid"}, ""))
	})
}

// msgKinds are the kinds of the msgCols columns, for typed placeholders.
var msgKinds = [nMsgCols]colKind{kMsgID, kTopic, kClientID, kString, kInt, kInt, kBlob, kTime, kTime, kMode, kString, kString, kText}

// publishCTE returns PostgreSQL's one-statement Publish (see publishOne),
// whose arguments are arrays: the counters' topics, counts and nodes,
// then one per column of msgCols and the messages' backs, and with notify
// the (channel, payload) pairs of pg_notify. The counter
// upsert returns the new counters, the INSERT takes each message's
// position from them, and the statement returns the watch version (see
// watchVersion). An empty string is NULL, as nullStr makes it, and so is
// an invalid expiry.
func (s *Store) publishCTE(notify bool) string {
	return s.cached("cte:"+strconv.FormatBool(notify), func() string {
		d := s.d
		arr := func(k colKind) string { return "CAST(? AS " + pgType(k) + "[])" }
		counters := "SELECT t, c, NULLIF(nd, ''), c FROM unnest(" + arr(kTopic) + ", " + arr(kSeq) + ", " + arr(kString) +
			") AS u(t, c, nd)"
		var src, sel strings.Builder
		for i, c := range strings.Split(msgCols, ", ") {
			src.WriteString(arr(msgKinds[i]) + ", ")
			switch msgKinds[i] {
			case kClientID, kString, kText:
				sel.WriteString("NULLIF(v." + c + ", ''), ")
			default:
				sel.WriteString("v." + c + ", ")
			}
		}
		src.WriteString(arr(kSeq))
		var q strings.Builder
		q.WriteString("WITH tc AS (" + s.counterUpsert("topic, seq, node, n", counters, true) + "), ms AS (INSERT INTO " +
			d.quote(s.t.msg) + " (" + msgCols + ", seq) SELECT " + sel.String() + "tc.seq - v.back FROM unnest(" + src.String() +
			") AS v (" + msgCols + ", back), tc WHERE tc.topic = v.topic" + d.onConflict([]string{"msgid"}, "") + ")")
		if notify {
			q.WriteString(", nt AS (SELECT pg_notify(c, p) FROM unnest(CAST(? AS text[]), CAST(? AS text[])) AS u(c, p))")
		}
		q.WriteString(" SELECT COALESCE((SELECT seq FROM " + d.quote(s.t.topic) + " WHERE topic = ''), 0)")
		if notify {
			q.WriteString(" + 0 * (SELECT count(*) FROM nt)")
		}
		return d.rebind(q.String())
	})
}

// cached returns the statement of key, built once per store.
func (s *Store) cached(key string, build func() string) string {
	s.insMu.RLock()
	q, ok := s.sqlBy[key]
	s.insMu.RUnlock()
	if ok {
		return q
	}
	q = build()
	s.insMu.Lock()
	s.sqlBy[key] = q
	s.insMu.Unlock()
	return q
}
