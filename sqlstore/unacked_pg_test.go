package sqlstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
)

// TestUnackedLookupScales has a subscriber that acked 2,000 messages of
// a topic above its watermark (the first message is still unacked, so
// the watermark stays), all after PostgreSQL last analyzed the ack table:
// a client that connected since, whose acks the planner's statistics do
// not know (it estimates one row). The look-ups of its unacked messages —
// every Acked's pass list, the watermark query and FetchOffline share the
// condition — must probe its acks per message, not compare every message
// with every ack: a plan that did (a nested loop over the client's
// materialized acks) took a second per call at 5,000 acks and stalled an
// async broker's pipeline. The test reads the
// work from EXPLAIN ANALYZE (rows a filter or a join filter looked at and
// dropped), not from a clock.
func TestUnackedLookupScales(t *testing.T) {
	url := testenv.PostgresURL(t)
	st := openPG(t, url)
	ctx := t.Context()
	const n, name, client = 2000, "probe/t", "c"
	// Another client's acks, analyzed: statistics that know the table but
	// not c.
	msgs := make([]*persist.Message, n)
	for i := range msgs {
		msgs[i] = &persist.Message{ID: persist.NewID(), Topic: name, Payload: []byte("x"), QoS: 1}
	}
	for _, c := range []string{"other", client} {
		if err := st.Subscribed(ctx, c, []persist.Subscription{{Filter: name, QoS: 1, History: true}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	ack := func(c string, from int) {
		t.Helper()
		for i := from; i < n; i += 500 {
			var acks []persist.Ack
			for _, m := range msgs[i:min(i+500, n)] {
				acks = append(acks, persist.Ack{ID: m.ID, Topic: m.Topic})
			}
			if err := st.Acked(ctx, c, acks...); err != nil {
				t.Fatal(err)
			}
		}
	}
	ack("other", 1)
	for _, q := range []string{`ALTER TABLE "mqtt_acked_msg" SET (autovacuum_enabled = false)`, `ANALYZE`} {
		if _, err := st.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ack(client, 1)
	var rows int
	if err := st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM "mqtt_acked_msg" WHERE clientid = $1`, client).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != n-1 {
		t.Fatalf("%d ack rows of %s, want %d (the first message unacked holds its watermark)", rows, client, n-1)
	}
	now := st.d.timeArg(time.Now())
	for _, c := range []struct {
		name string
		sql  string
		args []any
		want int // unacked messages
	}{
		{"pass list", st.q.passList, []any{name, 0, int64(1) << 60, "~", now, client}, 1},
		// An Acked of 500 acks: the first unacked positions above the
		// watermark (the one row of kind 0 besides).
		{"watermark query", st.marksSQL([]byte{fromW}), st.marksArgs(client, []persist.Ack{{Topic: name}}, []byte{fromW}, map[string]string{name: ""},
			map[string][]int64{name: make([]int64, 500)}, time.Now()), 2},
	} {
		var out string
		if err := st.db.QueryRowContext(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+c.sql, c.args...).Scan(&out); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plans []struct{ Plan planNode }
		if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 1 {
			t.Fatalf("%s: EXPLAIN output %q: %v", c.name, out, err)
		}
		p := plans[0].Plan
		if int(p.Rows) != c.want {
			t.Errorf("%s: %v rows, want %d", c.name, p.Rows, c.want)
		}
		if got := p.removed(); got > 4*n {
			t.Errorf("%s: rows looked at and dropped by filters: %.0f for %d messages and %d acks (the work grows with messages × acks); plan:\n%s", c.name, got, n, n-1, out)
		} else {
			t.Logf("%s: rows looked at and dropped by filters: %.0f", c.name, got)
		}
	}
}

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	Rows       float64    `json:"Actual Rows"`
	Loops      float64    `json:"Actual Loops"`
	Filtered   float64    `json:"Rows Removed by Filter"`
	JoinFilter float64    `json:"Rows Removed by Join Filter"`
	Plans      []planNode `json:"Plans"`
}

// removed is how many rows the filters of p and its children dropped, in
// all loops (EXPLAIN gives them per loop).
func (p planNode) removed() float64 {
	sum := (p.Filtered + p.JoinFilter) * p.Loops
	for _, c := range p.Plans {
		sum += c.removed()
	}
	return sum
}
