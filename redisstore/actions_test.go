package redisstore_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// hostile values must arrive as one argument each, never as commands.
var hostile = []string{
	"x\r\nFLUSHALL",
	"*1\r\n$8\r\nFLUSHALL\r\n",
	"a b c",
	`it's "quoted" \ and \"`,
	"a'; DROP TABLE mqtt_msg; --",
	"x${clientid}", // no second expansion (a leading $ would keep it from a rule for #)
	"传感器/温度",
}

// TestActions runs the seeds' raw commands through a Router on every
// topology, pipelined and not, with hostile client IDs, topics and
// payloads; afterwards the values are stored as data and the database
// still holds its other keys.
func TestActions(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		for _, pipeline := range []bool{false, true} {
			t.Run(fmt.Sprintf("Pipeline=%v", pipeline), func(t *testing.T) {
				testActions(t, c, pipeline)
			})
		}
	})
}

func testActions(t *testing.T, c redis.UniversalClient, pipeline bool) {
	ctx := t.Context()
	st := newStore(t, c, nil)
	p := testenv.FreshName("a") // raw commands name their keys: keep them apart
	t.Cleanup(func() { _ = dropKeys(t.Context(), c, p+":*") })
	control := p + ":control"
	if err := c.Set(ctx, control, "still here", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Another store's data, which must survive too.
	other := newStore(t, c, nil)
	keep := &persist.Message{ID: persist.NewID(), Topic: "keep/t", Payload: []byte("kept"), QoS: 1, Time: time.Now()}
	if err := other.Publish(ctx, keep); err != nil {
		t.Fatal(err)
	}
	acts, err := st.Actions(
		redisstore.Action{Hook: "client.connected", Pipeline: pipeline, Commands: []string{"SET " + p + ":conn:${clientid} ${clientid}"}},
		redisstore.Action{Hook: "client.disconnected", Pipeline: pipeline, Commands: []string{"SET " + p + ":disconn:${clientid} ${clientid}"}},
		redisstore.Action{Hook: "session.subscribed", Pipeline: pipeline, Commands: []string{"HSET " + p + ":sub:${clientid} ${topic} ${qos}"}},
		redisstore.Action{Hook: "session.unsubscribed", Pipeline: pipeline, Commands: []string{"SET " + p + ":unsub:${clientid} ${topic}"}},
		redisstore.Action{Hook: "message.publish", Pipeline: pipeline, Commands: []string{
			"RPUSH " + p + ":pub:${topic} ${msgid}",
			`HSET "` + p + `:msg:${msgid}" payload ${payload} "quoted field" "x ${clientid} y"`,
		}},
		redisstore.Action{Hook: "message.acked", Pipeline: pipeline, Commands: []string{"HSET " + p + ":ack:${clientid} ${topic} ${msgid}"}},
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
	var msgs []*persist.Message
	for i, h := range hostile {
		if err := r.Connected(ctx, &persist.Client{ID: h, Node: "n1", Online: true, OnlineAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := r.Connected(ctx, &persist.Client{ID: h, Node: "n1", OfflineAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := r.Subscribed(ctx, h, []persist.Subscription{{Filter: h, QoS: byte(i % 3)}}, []string{h + "/gone"}); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &persist.Message{Topic: h, Payload: append([]byte(h), 0, 0xff, '\r', '\n'), QoS: 1, From: h})
	}
	if err := r.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	for i, h := range hostile {
		if err := r.Acked(ctx, h, persist.Ack{ID: msgs[i].ID, Topic: h}); err != nil {
			t.Fatal(err)
		}
	}

	for i, h := range hostile {
		if got, err := c.Get(ctx, p+":conn:"+h).Result(); err != nil || got != h {
			t.Errorf("GET conn:%q = %q, %v", h, got, err)
		}
		if got, err := c.Get(ctx, p+":disconn:"+h).Result(); err != nil || got != h {
			t.Errorf("GET disconn:%q = %q, %v", h, got, err)
		}
		if got, err := c.HGet(ctx, p+":sub:"+h, h).Result(); err != nil || got != fmt.Sprint(i%3) {
			t.Errorf("HGET sub:%q %q = %q, %v", h, h, got, err)
		}
		if got, err := c.Get(ctx, p+":unsub:"+h).Result(); err != nil || got != h+"/gone" {
			t.Errorf("GET unsub:%q = %q, %v", h, got, err)
		}
		if got, err := c.LRange(ctx, p+":pub:"+h, 0, -1).Result(); err != nil || !slices.Equal(got, []string{msgs[i].ID}) {
			t.Errorf("LRANGE pub:%q = %q, %v", h, got, err)
		}
		hm, err := c.HGetAll(ctx, p+":msg:"+msgs[i].ID).Result()
		if err != nil || hm["payload"] != string(msgs[i].Payload) || hm["quoted field"] != "x "+h+" y" || len(hm) != 2 {
			t.Errorf("HGETALL msg:%s = %q, %v", msgs[i].ID, hm, err)
		}
		if got, err := c.HGet(ctx, p+":ack:"+h, h).Result(); err != nil || got != msgs[i].ID {
			t.Errorf("HGET ack:%q = %q, %v", h, got, err)
		}
	}
	if got, err := c.Get(ctx, control).Result(); err != nil || got != "still here" {
		t.Errorf("the control key after the hostile values: %q, %v", got, err)
	}
	if got, err := other.FetchOffline(ctx, "reader", "keep/t", persist.Fetch{}); err != nil || len(got) != 1 {
		t.Errorf("another store's message after the hostile values: %d, %v", len(got), err)
	}
	// Nothing but what the commands name was written under p: seven keys per
	// value (conn, disconn, sub, unsub, pub, msg, ack) and the control key.
	if n := countKeys(t, c, p+":*"); n != 1+7*len(hostile) {
		t.Errorf("%d keys under %s:*, want %d", n, p, 1+7*len(hostile))
	}
}

func TestActionsInvalid(t *testing.T) {
	st, err := redisstore.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		acts []redisstore.Action
		want string
	}{
		{"none", nil, "no actions"},
		{"unknown hook", []redisstore.Action{{Hook: "client.gone", Commands: []string{"SET a b"}}}, `unknown hook "client.gone"`},
		{"no commands", []redisstore.Action{{Hook: "client.connected"}}, "no commands"},
		{"unknown variable", []redisstore.Action{{Hook: "client.connected", Commands: []string{"SET a ${topic}"}}}, "unknown variable ${topic}"},
		{"unterminated quote", []redisstore.Action{{Hook: "message.publish", Commands: []string{`SET "a ${topic}`}}}, "unterminated quote"},
		{"empty command", []redisstore.Action{{Hook: "message.acked", Commands: []string{"  "}}}, "empty command"},
	} {
		_, err := st.Actions(c.acts...)
		if !errors.Is(err, persist.ErrInvalid) || !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("%s: Actions: %v, want an error matching ErrInvalid that says %q", c.name, err, c.want)
		}
	}
}

// TestActionsErrors: a failing command returns its error, classified; a
// closed store returns ErrClosed.
func TestActionsErrors(t *testing.T) {
	c := singleClient(t)
	st := newStore(t, c, nil)
	key := st.Prefix() + ":list"
	if err := c.RPush(t.Context(), key, "x").Err(); err != nil {
		t.Fatal(err)
	}
	acts, err := st.Actions(redisstore.Action{Hook: "message.publish", Commands: []string{"HSET " + key + " f ${payload}"}})
	if err != nil {
		t.Fatal(err)
	}
	err = acts.Publish(t.Context(), &persist.Message{ID: "1", Topic: "t", Payload: []byte("p")})
	var re redis.Error
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "WRONGTYPE") || persist.IsRetryable(err) {
		t.Errorf("HSET on a list: %v (retryable %v), want the WRONGTYPE redis.Error, not retryable", err, persist.IsRetryable(err))
	}
	st.Close()
	if err := acts.Publish(t.Context(), &persist.Message{ID: "1", Topic: "t"}); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
