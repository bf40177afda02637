package sqlstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// TestActions runs the seeds' raw SQL actions through a Router on every
// database, with hostile values that must arrive as data.
func TestActions(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		db.exec(t,
			"create table conn (clientid varchar(200), node varchar(100))",
			"create table disconn (clientid varchar(200))",
			"create table sub (clientid varchar(200), topic varchar(200), qos int)",
			"create table msg (msgid varchar(64), topic varchar(200), payload "+blobType(db.dialect)+", qos int)",
			"create table ack (msgid varchar(64), topic varchar(200), clientid varchar(200))",
		)
		st := db.open(t, nil)
		acts, err := st.Actions(
			sqlstore.Action{Hook: "client.connected", SQL: []string{"insert into conn(clientid, node) values(${clientid}, ${node})"}},
			sqlstore.Action{Hook: "client.disconnected", SQL: []string{"insert into disconn(clientid) values(${clientid})"}},
			sqlstore.Action{Hook: "session.subscribed", SQL: []string{"insert into sub(clientid, topic, qos) values(${clientid}, ${topic}, ${qos})"}},
			sqlstore.Action{Hook: "session.unsubscribed", SQL: []string{"delete from sub where clientid = ${clientid} and topic = ${topic}"}},
			sqlstore.Action{Hook: "message.publish", SQL: []string{"insert into msg(msgid, topic, payload, qos) values(${msgid}, ${topic}, ${payload}, ${qos})"}},
			sqlstore.Action{Hook: "message.acked", SQL: []string{"insert into ack(msgid, topic, clientid) values(${msgid}, ${topic}, ${clientid})"}},
		)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := acts.Events(), persist.OnConnected|persist.OnSubscribed|persist.OnPublish|persist.OnAcked; got != want {
			t.Errorf("Events() = %v, want %v", got, want)
		}
		r, err := persist.NewRouter(persist.Rule{Name: "actions", Store: acts})
		if err != nil {
			t.Fatal(err)
		}
		hostile := "a'; DROP TABLE mqtt_msg; --\r\n\"x\" 传感器"
		if err := r.Connected(ctx, &persist.Client{ID: hostile, Node: "n1", Online: true, OnlineAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := r.Connected(ctx, &persist.Client{ID: "test", Online: false, OfflineAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := r.Subscribed(ctx, hostile, []persist.Subscription{{Filter: "a/+", QoS: 1}, {Filter: "b/#", QoS: 2}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := r.Subscribed(ctx, hostile, nil, []string{"a/+"}); err != nil {
			t.Fatal(err)
		}
		payload := []byte{0, 1, 2, 0xff, '\'', ';'}
		m1 := &persist.Message{Topic: hostile, Payload: payload, QoS: 1, From: "p"}
		m2 := &persist.Message{Topic: "t/2", Payload: []byte("two"), QoS: 2, From: "p"}
		if err := r.Publish(ctx, m1, m2); err != nil {
			t.Fatal(err)
		}
		if err := r.Acked(ctx, hostile, persist.Ack{ID: m1.ID, Topic: m1.Topic}); err != nil {
			t.Fatal(err)
		}

		var id, node string
		if err := db.raw.QueryRowContext(ctx, "select clientid, node from conn").Scan(&id, &node); err != nil || id != hostile || node != "n1" {
			t.Errorf("conn row = (%q, %q, %v), want (%q, n1)", id, node, err, hostile)
		}
		if err := db.raw.QueryRowContext(ctx, "select clientid from disconn").Scan(&id); err != nil || id != "test" {
			t.Errorf("disconn row = %q, %v", id, err)
		}
		var topic string
		var qos int
		if err := db.raw.QueryRowContext(ctx, "select topic, qos from sub").Scan(&topic, &qos); err != nil || topic != "b/#" || qos != 2 {
			t.Errorf("sub rows after unsubscribe: (%q, %d, %v), want only (b/#, 2)", topic, qos, err)
		}
		rows, err := db.raw.QueryContext(ctx, "select msgid, topic, payload, qos from msg order by msgid")
		if err != nil {
			t.Fatal(err)
		}
		var got []persist.Message
		for rows.Next() {
			var m persist.Message
			var q int
			if err := rows.Scan(&m.ID, &m.Topic, &m.Payload, &q); err != nil {
				t.Fatal(err)
			}
			m.QoS = byte(q)
			got = append(got, m)
		}
		rows.Close()
		if len(got) != 2 || got[0].ID != m1.ID || got[0].Topic != hostile || string(got[0].Payload) != string(payload) || got[0].QoS != 1 ||
			got[1].ID != m2.ID || string(got[1].Payload) != "two" {
			t.Errorf("msg rows = %+v, want the two messages as published", got)
		}
		var ackID string
		if err := db.raw.QueryRowContext(ctx, "select msgid, clientid from ack").Scan(&ackID, &id); err != nil || ackID != m1.ID || id != hostile {
			t.Errorf("ack row = (%q, %q, %v)", ackID, id, err)
		}
		// The store's own tables are untouched by the injection attempts.
		var n int
		if err := db.raw.QueryRowContext(ctx, "select count(*) from mqtt_msg").Scan(&n); err != nil {
			t.Errorf("mqtt_msg is gone: %v", err)
		}
	})
}

func blobType(dialect string) string {
	if dialect == "postgres" {
		return "bytea"
	}
	return "blob"
}

// TestActionsAllOrNothing: a failing statement rolls back the call's others.
func TestActionsAllOrNothing(t *testing.T) {
	db := freshDB(t, "sqlite")
	db.exec(t, "create table msg (msgid varchar(64) primary key, topic varchar(200))")
	st := db.open(t, nil)
	acts, err := st.Actions(sqlstore.Action{Hook: "message.publish", SQL: []string{"insert into msg(msgid, topic) values(${msgid}, ${topic})"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	m := persisttestMessage("a")
	err = acts.Publish(ctx, m, persisttestMessage("b"), m) // the third repeats the first's key
	if err == nil {
		t.Fatal("Publish with a duplicate key succeeded")
	}
	if !strings.Contains(err.Error(), "message.publish") {
		t.Errorf("error %q does not name the hook", err)
	}
	var n int
	if err := db.raw.QueryRowContext(ctx, "select count(*) from msg").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows after a failed batch (%v), want 0", n, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := acts.Publish(ctx, persisttestMessage("c")); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Publish after the store closed: %v, want ErrClosed", err)
	}
	if _, err := acts.FetchOffline(ctx, "c", "#", persist.Fetch{}); !errors.Is(err, persist.ErrUnsupported) {
		t.Errorf("FetchOffline on actions: %v, want ErrUnsupported", err)
	}
}

func persisttestMessage(topic string) *persist.Message {
	return &persist.Message{ID: persist.NewID(), Topic: topic, QoS: 1, Time: time.Now()}
}

func TestActionsInvalid(t *testing.T) {
	st := freshDB(t, "sqlite").open(t, nil)
	tests := []struct {
		name    string
		actions []sqlstore.Action
		want    []string
	}{
		{"none", nil, []string{"no actions"}},
		{"unknown hook", []sqlstore.Action{{Hook: "client.connect", SQL: []string{"select 1"}}}, []string{`unknown hook "client.connect"`}},
		{"no sql", []sqlstore.Action{{Hook: "message.publish"}}, []string{"action 0 (message.publish): no SQL"}},
		{"unknown name", []sqlstore.Action{{Hook: "client.connected", SQL: []string{"insert into x values(${payload})"}}}, []string{"action 0 (client.connected) statement 0", "payload"}},
	}
	for _, tt := range tests {
		_, err := st.Actions(tt.actions...)
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tt.name, err, w)
			}
		}
	}
}
