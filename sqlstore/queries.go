package sqlstore

import (
	"strconv"
	"strings"
	"time"
)

// msgCols are the mqtt_msg columns Publish writes and fetches read, in the
// order scanMessage expects.
const msgCols = "msgid, topic, sender, node, qos, retain, payload, arrived, expiry, mode, username, peerhost, props"

// msgColsM is msgCols qualified by the alias m.
const msgColsM = "m.msgid, m.topic, m.sender, m.node, m.qos, m.retain, m.payload, m.arrived, m.expiry, m.mode, m.username, m.peerhost, m.props"

const nMsgCols = 13

// retainCols are the mqtt_retain columns Retain writes and Retained reads.
const retainCols = "topic, msgid, sender, node, qos, payload, arrived, expiry, props, username, peerhost"

const subCols = "clientid, topic, qos, no_local, retain_as_published, retain_handling, sub_id, start_id, created"

const nSubCols = 9

// queries are the statements that do not depend on a call's input, built
// once per store.
type queries struct {
	connected    string // a connect: always applies
	disconnected string // a disconnect: applies unless the client moved to another node
	client       string
	subList      string
	subStarts    string // a client's filters and their fanout starts
	// Acked's list of the messages it passes (see pass), its delete
	// of settled acks and its update of the acks it keeps (see keepSQL).
	passList, settle, keep string
	staleAcks              string // DeleteExpired's delete of stale ack rows
	retainUpsert           string
	retainDelete           string
	// PostgreSQL: the version of the watch table (see watch_pg.go) and
	// the notification of (channel, payload) pairs given as two arrays.
	watchVersion string
	notify       string
	// poll is the polling watch's query (see pollWatch).
	poll string
	// PostgreSQL's watch table (see watch_pg.go): its rows added after an
	// id, a watch's heartbeat, the deletion of dead watches' rows and the
	// move of the version.
	watchRows, watchBeat, watchDead, watchBump string
}

// placeholders returns "(?, ?, ...)" with n marks.
func placeholders(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// rows returns n groups of k placeholders: "(?, ?), (?, ?)".
func rowsOf(n, k int) string {
	p := placeholders(k)
	var b strings.Builder
	b.Grow(n * (len(p) + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p)
	}
	return b.String()
}

// keyCond is the condition that selects the row of a unique key over
// cols (of table alias a, "" for none) with one '?' per value (or one for
// the MySQL hash); keyArgs gives its arguments.
func keyCond(d dialect, a string, cols ...string) string {
	if a != "" {
		a += "."
	}
	if d.hashKeys() {
		return a + hashCol + " = ?"
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = a + c + " = ?"
	}
	return strings.Join(parts, " AND ")
}

// keyArgs returns the arguments of keyCond for the key values vals.
func keyArgs(d dialect, vals ...string) []any {
	if d.hashKeys() {
		return []any{keyHash(vals...)}
	}
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = v
	}
	return out
}

func buildQueries(d dialect, t tables) queries {
	ex, cur := d.excluded, func(c string) string { return d.current(t.client, c) }
	client := d.quote(t.client)
	var q queries

	// changed is the database's clock at a connect and at a disconnect
	// that applies (the polling watch reads it).
	insCols := "INSERT INTO " + client + " (clientid, state, node, username, peerhost, online_at, offline_at, created, changed) VALUES ("
	ins := insCols + strings.Repeat("?, ", 8) + "NULL)"
	// Strings and state are stored as given; a zero time keeps the stored
	// one. The node and state come last: MySQL assigns left to right and
	// later expressions read the new values (see q.disconnected).
	sets := [][2]string{
		{"changed", d.now()},
		{"released", "NULL"},
		{"username", ex("username")},
		{"peerhost", ex("peerhost")},
		{"online_at", "COALESCE(" + ex("online_at") + ", " + cur("online_at") + ")"},
		{"offline_at", "COALESCE(" + ex("offline_at") + ", " + cur("offline_at") + ")"},
		{"node", ex("node")},
		{"state", ex("state")},
	}
	clientSet := func(when string) string {
		parts := make([]string, len(sets))
		for i, a := range sets {
			v := a[1]
			if when != "" {
				v = "CASE WHEN " + when + " THEN " + v + " ELSE " + cur(a[0]) + " END"
			}
			parts[i] = a[0] + " = " + v
		}
		return strings.Join(parts, ", ")
	}
	q.connected = insCols + strings.Repeat("?, ", 8) + d.now() + ")" +
		d.onConflict([]string{"clientid"}, clientSet(""))
	if d.listens() {
		// A connect notifies every watch (see Store.Connected).
		q.connected = "WITH u AS (" + q.connected + ") SELECT pg_notify(?, ?)"
	}
	q.connected = d.rebind(q.connected)
	// A disconnect applies unless the client is stored online (state 1,
	// as Client reads it) on another node: it applies when the stored
	// state is not 1, the stored node is NULL, or the stored node is the
	// disconnect's (a NULL node, a disconnect naming none, equals no
	// node). One statement decides and writes, so no connect from another
	// node slips in between.
	//
	// Where the upsert has no WHERE (MySQL), each assignment keeps the
	// stored value unless the disconnect applies, and assignments read the
	// columns assigned before them, so applies must read the same for all
	// of them: state and node are assigned last, and once applies holds,
	// assigning node (to the disconnect's) or state (to 0) keeps it true.
	applies := "(" + cur("state") + " IS NULL OR " + cur("state") + " <> " + d.online() +
		" OR " + cur("node") + " IS NULL OR " + cur("node") + " = " + ex("node") + ")"
	q.disconnected = ins + d.onConflictIf([]string{"clientid"}, clientSet, applies)
	if !d.listens() {
		// A disconnect that does not apply still tells the polling
		// watches (persist.Notice.Offline: that node has recorded the
		// client's acks): it writes its node into released and moves
		// changed; any write that applies clears released.
		parts := []string{"released = CASE WHEN " + applies + " THEN NULL ELSE " + ex("node") + " END", "changed = " + d.now()}
		for _, a := range sets {
			if a[0] != "changed" && a[0] != "released" {
				parts = append(parts, a[0]+" = CASE WHEN "+applies+" THEN "+a[1]+" ELSE "+cur(a[0])+" END")
			}
		}
		q.disconnected = ins + d.onConflict([]string{"clientid"}, strings.Join(parts, ", "))
	}
	if d.listens() {
		// A disconnect notifies every watch too, applied or not.
		q.disconnected = "WITH u AS (" + q.disconnected + ") SELECT pg_notify(?, ?)"
	}
	q.disconnected = d.rebind(q.disconnected)
	q.client = d.rebind("SELECT clientid, state, node, username, peerhost, online_at, offline_at FROM " + client +
		" WHERE " + keyCond(d, "", "clientid"))

	q.subStarts = d.rebind("SELECT clientid, topic, start_id FROM " + d.quote(t.sub) + " WHERE clientid = ?")
	q.subList = d.rebind("SELECT clientid, topic, qos, no_local, retain_as_published, retain_handling, sub_id FROM " +
		d.quote(t.sub) + " WHERE clientid = ?")

	retain := d.quote(t.retain)
	var set []string
	for _, c := range strings.Split(retainCols, ", ")[1:] {
		set = append(set, c+" = "+d.excluded(c))
	}
	q.retainUpsert = d.rebind("INSERT INTO " + retain + " (" + retainCols + ") VALUES " + placeholders(11) +
		d.onConflict([]string{"topic"}, strings.Join(set, ", ")))
	q.retainDelete = d.rebind("DELETE FROM " + retain + " WHERE " + keyCond(d, "", "topic"))

	q.poll = d.rebind("SELECT 2 AS kind, '' AS name, 0 AS seq, NULL AS node, 0 AS n, " + d.now() + " AS changed, NULL AS at" +
		" UNION ALL SELECT 0, topic, seq, node, n, changed, NULL FROM " + d.quote(t.topic) + " WHERE changed > ?" +
		" UNION ALL SELECT CASE WHEN state = " + d.online() + " THEN 1 ELSE 3 END, clientid, 0, node, 0, changed, online_at FROM " +
		client + " WHERE changed > ?" +
		" UNION ALL SELECT 4, clientid, 0, released, 0, changed, NULL FROM " + client + " WHERE changed > ? AND released IS NOT NULL")
	q.watchVersion = d.rebind("SELECT COALESCE((SELECT seq FROM " + d.quote(t.topic) + " WHERE topic = ''), 0)")
	if d.listens() {
		q.notify = d.rebind("SELECT pg_notify(c, p) FROM unnest(CAST(? AS text[]), CAST(? AS text[])) AS u(c, p)")
		watch := d.quote(t.watch)
		q.watchRows = d.rebind("SELECT id, channel, topic FROM " + watch + " WHERE id > ?")
		q.watchBeat = d.rebind("UPDATE " + watch + " SET beat = " + d.now() + " WHERE channel = ?")
		q.watchDead = d.rebind("DELETE FROM " + watch + " WHERE beat < " + d.now() + " - INTERVAL '" + strconv.Itoa(int(deadAfter/time.Second)) + " seconds'")
		q.watchBump = d.rebind("INSERT INTO " + d.quote(t.topic) + " (topic, seq, changed, n) VALUES ('', 1, " + d.now() + ", 0)" +
			d.onConflict([]string{"topic"}, "seq = "+d.current(t.topic, "seq")+" + 1, changed = "+d.excluded("changed")))
	}
	return q
}

// subUpsertSQL returns the Subscribed upsert of n subscriptions. The start
// of a subscription is kept when it is subscribed again.
func (s *Store) subUpsertSQL(n int) string {
	s.insMu.RLock()
	q, ok := s.subByN[n]
	s.insMu.RUnlock()
	if ok {
		return q
	}
	d := s.d
	var set []string
	for _, c := range []string{"qos", "no_local", "retain_as_published", "retain_handling", "sub_id"} {
		set = append(set, c+" = "+d.excluded(c))
	}
	q = d.rebind("INSERT INTO " + d.quote(s.t.sub) + " (" + subCols + ") VALUES " + rowsOf(n, nSubCols) +
		d.onConflict([]string{"clientid", "topic"}, strings.Join(set, ", ")))
	s.insMu.Lock()
	s.subByN[n] = q
	s.insMu.Unlock()
	return q
}
