package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// seedsDB is the database of the single server where TestSeedsVerbatim
// keeps the default prefix "mqtt", so the seeds' commands are typed as the
// seeds print them.
const seedsDB = 9

// seedsStore returns a store with the default prefix on a database of its
// own (emptied before and after).
func seedsStore(t *testing.T) (*redisstore.Store, redis.UniversalClient) {
	u := testenv.RedisURL(t)
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	o.DB = seedsDB
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	flush := func() {
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("FLUSHDB on database %d: %v", seedsDB, err)
		}
	}
	flush()
	t.Cleanup(flush)
	st, err := redisstore.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st, c
}

// TestSeedsVerbatim types the seeds' own look-ups, key for key, against
// what the store wrote with its default options.
func TestSeedsVerbatim(t *testing.T) {
	st, c := seedsStore(t)
	checkSeeds(t, st, c, "mqtt")
}

// TestSeedsPrefixed runs the same look-ups with a prefix on every topology.
func TestSeedsPrefixed(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		st := newStore(t, c, nil)
		checkSeeds(t, st, c, st.Prefix())
	})
}

func checkSeeds(t *testing.T, st *redisstore.Store, c redis.UniversalClient, p string) {
	ctx := t.Context()
	hgetall := func(key string) map[string]string {
		t.Helper()
		h, err := c.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatalf("HGETALL %s: %v", key, err)
		}
		return h
	}
	same := func(what string, got, want map[string]string) {
		t.Helper()
		if !maps.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", what, got, want)
		}
	}
	sec := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

	// Client 'test' goes online, then offline.
	on := time.Now().Add(-time.Minute)
	if err := st.Connected(ctx, &persist.Client{ID: "test", Node: "node1@127.0.0.1", Online: true, OnlineAt: on}); err != nil {
		t.Fatal(err)
	}
	h := hgetall(p + ":client:test")
	same("HGETALL mqtt:client:test (online), the seeds' fields", pick(h, "state", "online_at", "offline_at", "node"),
		map[string]string{"state": "1", "online_at": sec(on), "offline_at": "undefined", "node": "node1@127.0.0.1"})
	if ts, err := c.HGet(ctx, p+":node:node1@127.0.0.1", "test").Result(); err != nil || ts != sec(on) {
		t.Errorf("HGET mqtt:node:node1@127.0.0.1 test = %q, %v; want %s", ts, err, sec(on))
	}
	off := time.Now()
	if err := st.Connected(ctx, &persist.Client{ID: "test", Node: "node1@127.0.0.1", Online: false, OfflineAt: off}); err != nil {
		t.Fatal(err)
	}
	h = hgetall(p + ":client:test")
	same("HGETALL mqtt:client:test (offline)", pick(h, "state", "online_at", "offline_at", "node"),
		map[string]string{"state": "0", "online_at": sec(on), "offline_at": sec(off), "node": "node1@127.0.0.1"})
	if n, err := c.HExists(ctx, p+":node:node1@127.0.0.1", "test").Result(); err != nil || n {
		t.Errorf("HEXISTS mqtt:node:node1@127.0.0.1 test after the disconnect = %v, %v; want false", n, err)
	}

	// Client 'moved' leaves node1 for node2; node1's disconnect arrives
	// last: the hash stays as node2's connect wrote it, and only node2
	// lists the client.
	on2 := on.Add(time.Second)
	for _, cl := range []*persist.Client{
		{ID: "moved", Node: "node1@127.0.0.1", Online: true, OnlineAt: on},
		{ID: "moved", Node: "node2@127.0.0.1", Online: true, OnlineAt: on2},
		{ID: "moved", Node: "node1@127.0.0.1", Online: false, OfflineAt: off},
	} {
		if err := st.Connected(ctx, cl); err != nil {
			t.Fatal(err)
		}
	}
	same("HGETALL mqtt:client:moved after node1's late disconnect", pick(hgetall(p+":client:moved"), "state", "online_at", "offline_at", "node"),
		map[string]string{"state": "1", "online_at": sec(on2), "offline_at": "undefined", "node": "node2@127.0.0.1"})
	if n, err := c.HExists(ctx, p+":node:node1@127.0.0.1", "moved").Result(); err != nil || n {
		t.Errorf("HEXISTS mqtt:node:node1@127.0.0.1 moved = %v, %v; want false", n, err)
	}
	if ts, err := c.HGet(ctx, p+":node:node2@127.0.0.1", "moved").Result(); err != nil || ts != sec(on2) {
		t.Errorf("HGET mqtt:node:node2@127.0.0.1 moved = %q, %v; want %s", ts, err, sec(on2))
	}

	// Subscriptions: HSET "mqtt:sub:test" "topic1" 1 …
	if err := st.Subscribed(ctx, "test", []persist.Subscription{{Filter: "topic1", QoS: 1}, {Filter: "topic2", QoS: 2}}, nil); err != nil {
		t.Fatal(err)
	}
	same("HGETALL mqtt:sub:test", hgetall(p+":sub:test"), map[string]string{"topic1": "1", "topic2": "2"})

	// Retained: HGETALL mqtt:retain:topic.
	r := &persist.Message{ID: persist.NewID(), Topic: "topic", Payload: []byte("Hello world!"), QoS: 1, Retain: true, From: "test", Time: time.Now()}
	if err := st.Retain(ctx, r); err != nil {
		t.Fatal(err)
	}
	seedMsg := map[string]string{"id": r.ID, "from": "test", "qos": "1", "topic": "topic", "retain": "true", "payload": "Hello world!", "ts": sec(r.Time)}
	same("HGETALL mqtt:retain:topic, the seeds' fields", pick(hgetall(p+":retain:topic"), "id", "from", "qos", "topic", "retain", "payload", "ts"), seedMsg)

	// Messages: HGETALL mqtt:msg:${msgid}; the fanout cursor.
	m := &persist.Message{ID: persist.NewID(), Topic: "topic", Payload: []byte("Hello world!"), QoS: 1, Retain: true, From: "test", Time: r.Time}
	if err := st.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	seedMsg["id"] = m.ID
	same("HGETALL mqtt:msg:${msgid}, the seeds' fields", pick(hgetall(p+":msg:"+m.ID), "id", "from", "qos", "topic", "retain", "payload", "ts"), seedMsg)
	ids, err := c.ZRange(ctx, p+":fanout:{topic}", 0, -1).Result()
	if err != nil || !slices.Equal(ids, []string{m.ID}) {
		t.Errorf("ZRANGE mqtt:fanout:{topic} 0 -1 = %q, %v; want [%s]", ids, err, m.ID)
	}
	if err := st.Acked(ctx, "test", persist.Ack{ID: m.ID, Topic: "topic"}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, p+":acked:test:topic").Result(); err != nil || got != m.ID {
		t.Errorf("GET mqtt:acked:test:topic = %q, %v; want %s", got, err, m.ID)
	}
	// Seed-style data written by hand reads back through the store.
	if err := c.HSet(ctx, p+":sub:seeded", "topic1", 1, "topic2", 2).Err(); err != nil {
		t.Fatal(err)
	}
	subs, err := st.Subscriptions(ctx, "seeded")
	if err != nil || !slices.Equal(subs, []persist.Subscription{{Filter: "topic1", QoS: 1}, {Filter: "topic2", QoS: 2}}) {
		t.Errorf("Subscriptions of a hash written by hand = %+v, %v", subs, err)
	}
	if err := c.HSet(ctx, p+":client:seeded", "state", "1", "online_at", "1481685802", "offline_at", "undefined").Err(); err != nil {
		t.Fatal(err)
	}
	cl, err := st.Client(ctx, "seeded")
	if err != nil || !cl.Online || cl.OnlineAt.Unix() != 1481685802 || !cl.OfflineAt.IsZero() {
		t.Errorf("Client of a hash written by hand = %+v, %v", cl, err)
	}
}

func pick(h map[string]string, fields ...string) map[string]string {
	out := map[string]string{}
	for _, f := range fields {
		if v, ok := h[f]; ok {
			out[f] = v
		}
	}
	return out
}

// TestEvents has a plain client SUBSCRIBE to the channel and checks the
// seeds' subscribe and unsubscribe events, byte for byte.
func TestEvents(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		st := newStore(t, c, nil) // the default channel, mqtt_channel
		sub := c.Subscribe(ctx, "mqtt_channel")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
			t.Fatal(err)
		}
		id := testenv.FreshName("test-") + " \"quoted\" <&>"
		if err := st.Subscribed(ctx, id, []persist.Subscription{{Filter: "topic0", QoS: 0}, {Filter: "a/+/c", QoS: 2}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.Subscribed(ctx, id, nil, []string{"test_topic0"}); err != nil {
			t.Fatal(err)
		}
		var qb strings.Builder
		enc := json.NewEncoder(&qb)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(id)
		q := strings.TrimSpace(qb.String())
		want := []string{
			`{"type":"subscribe","topic":"topic0","clientid":` + q + `,"qos":0}`,
			`{"type":"subscribe","topic":"a/+/c","clientid":` + q + `,"qos":2}`,
			`{"type":"unsubscribe","topic":"test_topic0","clientid":` + q + `}`,
		}
		var got []string
		deadline := time.After(10 * time.Second)
		for len(got) < len(want) {
			select {
			case msg := <-sub.Channel():
				var ev map[string]any
				if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
					t.Fatalf("event %q is not JSON: %v", msg.Payload, err)
				}
				if ev["clientid"] == id { // other tests publish on mqtt_channel too
					got = append(got, msg.Payload)
				}
			case <-deadline:
				t.Fatalf("got %d events in 10s, want %d: %q", len(got), len(want), got)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("events:\n got %q\nwant %q", got, want)
		}

		// With NoEvents, or another Channel.
		quiet := newStore(t, c, &redisstore.Options{NoEvents: true})
		other := newStore(t, c, &redisstore.Options{Channel: id})
		osub := c.Subscribe(ctx, id)
		defer osub.Close()
		if _, err := osub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		if err := quiet.Subscribed(ctx, id, []persist.Subscription{{Filter: "quiet", QoS: 1}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := other.Subscribed(ctx, id, []persist.Subscription{{Filter: "other", QoS: 1}}, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case msg := <-osub.Channel():
			if want := fmt.Sprintf(`{"type":"subscribe","topic":"other","clientid":%s,"qos":1}`, q); msg.Payload != want {
				t.Errorf("event on Options.Channel = %q, want %q", msg.Payload, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event on Options.Channel")
		}
		deadline = time.After(500 * time.Millisecond)
		for {
			select {
			case msg := <-sub.Channel():
				if json.Valid([]byte(msg.Payload)) && strings.Contains(msg.Payload, `"topic":"quiet"`) {
					t.Errorf("a store with NoEvents published %q", msg.Payload)
				}
				continue
			case <-deadline:
			}
			break
		}
	})
}
