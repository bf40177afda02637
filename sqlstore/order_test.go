package sqlstore_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// oldSchema turns the tables Migrate made into those of the version before
// positions: no mqtt_msg.seq, mqtt_acked.seq, mqtt_client.changed, no
// counter, individual ack or watch table.
func oldSchema(t *testing.T, db testDB) {
	t.Helper()
	q := func(s string) string {
		if db.dialect == "mysql" {
			return "`" + s + "`"
		}
		return `"` + s + `"`
	}
	dropIndex := func(table, name string) string {
		if db.dialect == "mysql" {
			return "DROP INDEX " + q(name) + " ON " + q(table)
		}
		return "DROP INDEX IF EXISTS " + q(name)
	}
	stmts := []string{
		dropIndex("mqtt_msg", "mqtt_msg_topic_seq_idx"),
		dropIndex("mqtt_client", "mqtt_client_changed_idx"),
	}
	if db.dialect != "mysql" {
		stmts = append(stmts, dropIndex("mqtt_msg", "mqtt_msg_noseq_idx"), dropIndex("mqtt_acked", "mqtt_acked_noseq_idx"))
	}
	stmts = append(stmts,
		"ALTER TABLE "+q("mqtt_msg")+" DROP COLUMN seq",
		"ALTER TABLE "+q("mqtt_acked")+" DROP COLUMN seq",
		"ALTER TABLE "+q("mqtt_client")+" DROP COLUMN changed",
		"DROP TABLE IF EXISTS "+q("mqtt_topic"),
		"DROP TABLE IF EXISTS "+q("mqtt_acked_msg"),
		"DROP TABLE IF EXISTS "+q("mqtt_watch"),
	)
	db.exec(t, stmts...)
}

// oldMessage inserts a fanout message as the version before positions
// wrote it (no seq).
func oldMessage(t *testing.T, db testDB, id, topic string) {
	t.Helper()
	db.exec(t, fmt.Sprintf("INSERT INTO mqtt_msg (msgid, topic, qos, payload, arrived) VALUES ('%s', '%s', 1, 'x', '%s')",
		id, topic, time.Now().UTC().Format("2006-01-02 15:04:05")))
}

func seqOf(t *testing.T, db testDB, id string) string {
	t.Helper()
	_, rows := db.query(t, "SELECT seq FROM mqtt_msg WHERE msgid = '"+id+"'")
	if len(rows) != 1 {
		t.Fatalf("message %s: %d rows", id, len(rows))
	}
	return rows[0]["seq"]
}

func ids(msgs []*persist.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// TestMigrateGivesPositions upgrades tables of the version before
// positions holding messages and cursors: Migrate numbers each topic's
// messages in ID order, turns each cursor into a watermark that skips what
// the cursor skipped, and numbers again (above the counter) messages that
// an older node writes after the upgrade.
func TestMigrateGivesPositions(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		st := db.open(t, nil)
		oldSchema(t, db)
		base := time.Now().Add(-time.Hour)
		var a, b []string
		for i := range 5 {
			a = append(a, persist.NewIDAt(base.Add(time.Duration(i)*time.Second)))
		}
		for i := range 3 {
			b = append(b, persist.NewIDAt(base.Add(time.Duration(i)*time.Second)))
		}
		// Inserted out of ID order: the numbering follows the IDs.
		for _, i := range rand.Perm(5) {
			oldMessage(t, db, a[i], "up/a")
		}
		for _, i := range rand.Perm(3) {
			oldMessage(t, db, b[i], "up/b")
		}
		db.exec(t, "INSERT INTO mqtt_acked (clientid, topic, mid) VALUES ('c', 'up/a', '"+a[1]+"')",
			"INSERT INTO mqtt_acked (clientid, topic, mid) VALUES ('c', 'up/b', NULL)")
		for range 2 { // idempotent
			if err := st.Migrate(ctx); err != nil {
				t.Fatalf("Migrate over the old tables: %v", err)
			}
		}
		for i, id := range a {
			if got := seqOf(t, db, id); got != fmt.Sprint(i+1) {
				t.Errorf("up/a #%d: seq %s, want %d", i, got, i+1)
			}
		}
		for i, id := range b {
			if got := seqOf(t, db, id); got != fmt.Sprint(i+1) {
				t.Errorf("up/b #%d: seq %s, want %d", i, got, i+1)
			}
		}
		_, rows := db.query(t, "SELECT topic, seq FROM mqtt_topic ORDER BY topic")
		if len(rows) != 2 || rows[0]["seq"] != "5" || rows[1]["seq"] != "3" {
			t.Errorf("counters %v, want up/a 5 and up/b 3", rows)
		}
		_, rows = db.query(t, "SELECT topic, seq FROM mqtt_acked WHERE clientid = 'c' ORDER BY topic")
		if len(rows) != 2 || rows[0]["seq"] != "2" || rows[1]["seq"] != "0" {
			t.Errorf("watermarks %v, want up/a 2 (the cursor's #1) and up/b 0", rows)
		}

		fetch := func(client, filter string) []string {
			t.Helper()
			got, err := st.FetchOffline(ctx, client, filter, persist.Fetch{Mode: persist.Fanout})
			if err != nil {
				t.Fatal(err)
			}
			return ids(got)
		}
		if got := fetch("c", "up/a"); !slices.Equal(got, a[2:]) {
			t.Errorf("c's fetch of up/a after the upgrade: %v, want #2..#4 %v", got, a[2:])
		}
		if got := fetch("c", "up/+"); !slices.Equal(got, sortedIDs(append(slices.Clone(a[2:]), b...))) {
			t.Errorf("c's fetch of up/+ after the upgrade: %v", got)
		}
		if got := fetch("d", "up/a"); !slices.Equal(got, a) {
			t.Errorf("d's fetch of up/a: %v, want all %v", got, a)
		}
		if err := st.Acked(ctx, "c", persist.Ack{ID: a[3], Topic: "up/a"}); err != nil {
			t.Fatal(err)
		}
		if got := fetch("c", "up/a"); !slices.Equal(got, []string{a[2], a[4]}) {
			t.Errorf("after acking #3: %v, want #2 and #4", got)
		}

		// A node of the older version still writes without positions.
		m := &persist.Message{ID: persist.NewID(), Topic: "up/a", Payload: []byte("new"), QoS: 1}
		if err := st.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		if got := seqOf(t, db, m.ID); got != "6" {
			t.Errorf("a new message of up/a: seq %s, want 6", got)
		}
		late := persist.NewIDAt(base)
		oldMessage(t, db, late, "up/a")
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got := seqOf(t, db, late); got != "7" {
			t.Errorf("a message written without a position after the upgrade: seq %s after Migrate, want 7", got)
		}
		if got := fetch("c", "up/a"); !slices.Equal(got, sortedIDs([]string{late, a[2], a[4], m.ID})) {
			t.Errorf("c's fetch after that: %v", got)
		}
	})
}

func sortedIDs(s []string) []string {
	slices.Sort(s)
	return s
}

// TestWatermark checks the rows behind the ack contract: acks above the
// watermark are rows of mqtt_acked_msg until the watermark passes their
// messages, the watermark stops below the first message not acked, and
// messages before the client's subscription do not hold it back but
// stay fetchable through a filter without a stored subscription: the
// cursor keeps them as one range (base_seq), and an ack of one of them as
// a row (passed 2).
func TestWatermark(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		st := db.open(t, nil)
		count := func(q string) string {
			t.Helper()
			_, rows := db.query(t, q)
			return rows[0]["n"]
		}
		state := func() (w, acks, passed, base string) {
			t.Helper()
			_, rows := db.query(t, "SELECT seq, base_seq FROM mqtt_acked WHERE clientid = 'c' AND topic = 'wm/t'")
			if len(rows) == 1 {
				w, base = rows[0]["seq"], rows[0]["base_seq"]
			}
			return w, count("SELECT COUNT(*) AS n FROM mqtt_acked_msg WHERE clientid = 'c' AND passed = 0"),
				count("SELECT COUNT(*) AS n FROM mqtt_acked_msg WHERE clientid = 'c' AND passed <> 0"), base
		}
		var history []*persist.Message
		for i := range 4 {
			history = append(history, &persist.Message{ID: persist.NewID(), Topic: "wm/t", Payload: fmt.Appendf(nil, "h%d", i), QoS: 1})
		}
		if err := st.Publish(ctx, history...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		if err := st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "wm/#", QoS: 1}}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		var m []*persist.Message
		for i := range 4 {
			m = append(m, &persist.Message{ID: persist.NewID(), Topic: "wm/t", Payload: fmt.Appendf(nil, "m%d", i), QoS: 1})
		}
		if err := st.Publish(ctx, m...); err != nil {
			t.Fatal(err)
		}
		ack := func(ms ...*persist.Message) {
			t.Helper()
			acks := make([]persist.Ack, len(ms))
			for i, x := range ms {
				acks[i] = persist.Ack{ID: x.ID, Topic: x.Topic}
			}
			if err := st.Acked(ctx, "c", acks...); err != nil {
				t.Fatal(err)
			}
		}
		// Positions 1..4 are the history, 5..8 the messages after the
		// subscription.
		ack(m[1], m[3])
		if w, acks, passed, base := state(); w != "4" || acks != "2" || passed != "0" || base != "4" {
			t.Errorf("after acking #1 and #3: watermark %s, %s acks, %s passed rows, range to %s; want 4 (before #0), 2, 0, 4 (the history)", w, acks, passed, base)
		}
		ack(m[0])
		if w, acks, _, base := state(); w != "6" || acks != "1" || base != "6" {
			t.Errorf("after acking #0: watermark %s, %s acks, range to %s; want 6 (before #2), 1 (#3), 6", w, acks, base)
		}
		ack(m[2])
		if w, acks, _, _ := state(); w != "8" || acks != "0" {
			t.Errorf("after acking everything: watermark %s, %s acks; want 8, 0", w, acks)
		}
		got, err := st.FetchOffline(ctx, "c", "wm/#", persist.Fetch{Mode: persist.Fanout})
		if err != nil || len(got) != 0 {
			t.Errorf("fetch of the subscription's filter: %v, %v; want nothing", ids(got), err)
		}
		got, err = st.FetchOffline(ctx, "c", "wm/t", persist.Fetch{Mode: persist.Fanout})
		if err != nil || !slices.Equal(ids(got), ids(history)) {
			t.Errorf("fetch of a filter without a subscription: %v, %v; want the history %v", ids(got), err, ids(history))
		}
		ack(history[0])
		if _, _, kept, _ := state(); kept != "1" {
			t.Errorf("after acking a passed message: %s kept acks, want 1", kept)
		}
		got, err = st.FetchOffline(ctx, "c", "wm/t", persist.Fetch{Mode: persist.Fanout})
		if err != nil || !slices.Equal(ids(got), ids(history[1:])) {
			t.Errorf("fetch of a filter without a subscription after acking #0 of the history: %v, %v; want %v", ids(got), err, ids(history[1:]))
		}
		if n, err := st.DeleteExpired(ctx); err != nil || n != 0 {
			t.Errorf("DeleteExpired: %d, %v; want nothing to delete", n, err)
		}
	})
}

var _ = sqlstore.DefaultTopicTable

// TestDeleteExpiredAcks checks which rows of mqtt_acked_msg DeleteExpired
// deletes: those written over an hour ago whose message is not stored or
// is at or below the client's watermark; not an ack above it, not a
// recent ack of a message not stored yet.
func TestDeleteExpiredAcks(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		st := db.open(t, nil)
		m := make([]*persist.Message, 3)
		for i := range m {
			m[i] = &persist.Message{ID: persist.NewID(), Topic: "dx/t", Payload: []byte("x"), QoS: 1}
		}
		if err := st.Publish(ctx, m...); err != nil {
			t.Fatal(err)
		}
		early := persist.NewID() // acked before it is stored
		if err := st.Acked(ctx, "c", persist.Ack{ID: m[2].ID, Topic: "dx/t"}, persist.Ack{ID: early, Topic: "dx/t"},
			persist.Ack{ID: persist.NewID(), Topic: "dx/gone"}); err != nil {
			t.Fatal(err)
		}
		rows := func() []string {
			t.Helper()
			_, rs := db.query(t, "SELECT msgid FROM mqtt_acked_msg ORDER BY msgid")
			var out []string
			for _, r := range rs {
				out = append(out, r["msgid"])
			}
			return out
		}
		if got := len(rows()); got != 3 {
			t.Fatalf("%d ack rows, want 3", got)
		}
		if n, err := st.DeleteExpired(ctx); err != nil || n != 0 {
			t.Errorf("DeleteExpired of recent acks: %d, %v; want 0", n, err)
		}
		// An hour later; and a row left at the watermark by a race.
		old := time.Now().Add(-2 * time.Hour).UTC().Format("2006-01-02 15:04:05")
		db.exec(t, "UPDATE mqtt_acked_msg SET acked_at = '"+old+"'",
			"UPDATE mqtt_acked SET seq = 1 WHERE clientid = 'c' AND topic = 'dx/t'",
			"INSERT INTO mqtt_acked_msg (clientid, msgid, topic, acked_at, passed) VALUES ('c', '"+m[0].ID+"', 'dx/t', '"+old+"', 0)")
		n, err := st.DeleteExpired(ctx)
		if err != nil || n != 3 {
			t.Errorf("DeleteExpired an hour later: %d, %v; want 3 (two acks of messages not stored, one at the watermark)", n, err)
		}
		if got := rows(); !slices.Equal(got, []string{m[2].ID}) {
			t.Errorf("ack rows left: %v, want the ack of #2 (above the watermark) alone", got)
		}
		got, err := st.FetchOffline(ctx, "c", "dx/t", persist.Fetch{Mode: persist.Fanout})
		if err != nil || !slices.Equal(ids(got), []string{m[1].ID}) {
			t.Errorf("fetch after DeleteExpired: %v, %v; want #1", ids(got), err)
		}
	})
}

// TestPositions has two nodes publish concurrently batches of one to
// twelve messages over a few topics (some batches of one topic, some of
// several, some larger than Options.BatchRows): every topic's messages get
// the positions 1 to their number, once each, and its counter is that
// number.
func TestPositions(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		nodes := []*sqlstore.Store{db.open(t, &sqlstore.Options{BatchRows: 5}), db.open(t, &sqlstore.Options{BatchRows: 5})}
		const workers, rounds = 6, 25
		published := make([]map[string]int, workers)
		errs := make(chan error, workers)
		for w := range workers {
			published[w] = map[string]int{}
			go func() {
				var err error
				defer func() { errs <- err }()
				for r := range rounds {
					n := 1 + (w*7+r*5)%12
					batch := make([]*persist.Message, n)
					for i := range batch {
						topic := fmt.Sprintf("pos/%d", (w+r+i*(r%3))%4)
						batch[i] = &persist.Message{ID: persist.NewID(), Topic: topic, Payload: []byte("x"), QoS: 1}
						published[w][topic]++
					}
					if err = nodes[(w+r)%2].Publish(ctx, batch...); err != nil {
						return
					}
				}
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]int{}
		for _, p := range published {
			for topic, n := range p {
				want[topic] += n
			}
		}
		for topic, n := range want {
			_, rows := db.query(t, "SELECT seq FROM mqtt_msg WHERE topic = '"+topic+"' ORDER BY seq")
			if len(rows) != n {
				t.Errorf("%s: %d messages stored, want %d", topic, len(rows), n)
				continue
			}
			for i, r := range rows {
				if r["seq"] != fmt.Sprint(i+1) {
					t.Errorf("%s: positions %v, want 1..%d once each", topic, rows, n)
					break
				}
			}
			_, rows = db.query(t, "SELECT seq FROM mqtt_topic WHERE topic = '"+topic+"'")
			if len(rows) != 1 || rows[0]["seq"] != fmt.Sprint(n) {
				t.Errorf("%s: counter %v, want %d", topic, rows, n)
			}
		}
	})
}
