package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

func msg(topic string, mode persist.Mode) *persist.Message {
	return &persist.Message{ID: persist.NewID(), Topic: topic, Payload: []byte(topic), QoS: 1, Mode: mode, Time: time.Now()}
}

func pttl(t *testing.T, c redis.UniversalClient, key string) time.Duration {
	t.Helper()
	d, err := c.PTTL(t.Context(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

// TestTTL checks the keys' TTLs: expired_after for messages and cursors,
// the earlier MQTT expiry when there is one, none for a retained message
// without expiry, and none at all with a negative ExpiredAfter.
func TestTTL(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		st := newStore(t, c, &redisstore.Options{ExpiredAfter: 10 * time.Second})
		p := st.Prefix()
		plain := msg("ttl/plain", persist.Fanout)
		soon := msg("ttl/soon", persist.Queue)
		soon.Expiry = time.Now().Add(3 * time.Second)
		late := msg("ttl/late", persist.Fanout)
		late.Expiry = time.Now().Add(time.Hour)
		if err := st.Publish(ctx, plain, soon, late); err != nil {
			t.Fatal(err)
		}
		within := func(what string, d, lo, hi time.Duration) {
			t.Helper()
			if d < lo || d > hi {
				t.Errorf("%s: TTL %v, want within [%v, %v]", what, d, lo, hi)
			}
		}
		within("message without expiry (expired_after 10s)", pttl(t, c, p+":msg:"+plain.ID), 8*time.Second, 10*time.Second)
		within("message expiring in 3s", pttl(t, c, p+":msg:"+soon.ID), time.Second, 3*time.Second)
		within("message expiring in 1h (capped by expired_after)", pttl(t, c, p+":msg:"+late.ID), 8*time.Second, 10*time.Second)
		// The index keys live up to a sixteenth of expired_after past their
		// latest message, and get a new expiry when a message outlives it.
		const slack = 10 * time.Second / 16
		for _, k := range []string{"", ":seq", ":exp", ":ids"} {
			within("fanout index"+k, pttl(t, c, p+":fanout:{ttl/plain}"+k), 8*time.Second, 10*time.Second+slack)
		}
		time.Sleep(slack + 100*time.Millisecond)
		again := msg("ttl/plain", persist.Fanout)
		if err := st.Publish(ctx, again); err != nil {
			t.Fatal(err)
		}
		newest := pttl(t, c, p+":msg:"+again.ID)
		for _, k := range []string{"", ":seq", ":exp", ":ids"} {
			within("fanout index"+k+" after a later message", pttl(t, c, p+":fanout:{ttl/plain}"+k), newest, 10*time.Second+slack)
		}
		within("queue index", pttl(t, c, p+":queue:ttl/soon"), time.Second, 3*time.Second)
		if err := st.Acked(ctx, "c", persist.Ack{ID: plain.ID, Topic: plain.Topic}); err != nil {
			t.Fatal(err)
		}
		within("cursor", pttl(t, c, p+":acked:c:ttl/plain"), 8*time.Second, 10*time.Second)
		within("watermark", pttl(t, c, p+":cursor:{c}:w:ttl/plain"), 8*time.Second, 10*time.Second)
		// A subscriber's base (the past it passed) and its kept acks.
		if err := st.Subscribed(ctx, "s", []persist.Subscription{{Filter: "ttl/plain", QoS: 1}}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		after := msg("ttl/plain", persist.Fanout)
		if err := st.Publish(ctx, after); err != nil {
			t.Fatal(err)
		}
		if err := st.Acked(ctx, "s", persist.Ack{ID: after.ID, Topic: after.Topic}); err != nil {
			t.Fatal(err)
		}
		if err := st.Acked(ctx, "s", persist.Ack{ID: plain.ID, Topic: plain.Topic}); err != nil {
			t.Fatal(err)
		}
		within("base", pttl(t, c, p+":cursor:{s}:b:ttl/plain"), 8*time.Second, 10*time.Second)
		within("kept acks", pttl(t, c, p+":cursor:{s}:k:ttl/plain"), 8*time.Second, 10*time.Second)
		r := msg("ttl/r", persist.Fanout)
		if err := st.Retain(ctx, r); err != nil {
			t.Fatal(err)
		}
		if d := pttl(t, c, p+":retain:ttl/r"); d != -1 {
			t.Errorf("retained message without expiry: TTL %v, want none (-1)", d)
		}
		r.Expiry = time.Now().Add(5 * time.Second)
		if err := st.Retain(ctx, r); err != nil {
			t.Fatal(err)
		}
		within("retained message expiring in 5s", pttl(t, c, p+":retain:ttl/r"), 3*time.Second, 5*time.Second)

		forever := newStore(t, c, &redisstore.Options{ExpiredAfter: -1})
		f := msg("ttl/forever", persist.Fanout)
		if err := forever.Publish(ctx, f); err != nil {
			t.Fatal(err)
		}
		if d := pttl(t, c, forever.Prefix()+":msg:"+f.ID); d != -1 {
			t.Errorf("ExpiredAfter -1, no expiry: message TTL %v, want none", d)
		}
		if d := pttl(t, c, forever.Prefix()+":fanout:{ttl/forever}"); d != -1 {
			t.Errorf("ExpiredAfter -1, no expiry: index TTL %v, want none", d)
		}
		if err := forever.Acked(ctx, "c", persist.Ack{ID: f.ID, Topic: f.Topic}); err != nil {
			t.Fatal(err)
		}
		if d := pttl(t, c, forever.Prefix()+":cursor:{c}:w:ttl/forever"); d != -1 {
			t.Errorf("ExpiredAfter -1: watermark TTL %v, want none", d)
		}
	})
}

// TestIndexPruning: expired IDs leave a topic's index (and its expiry
// set) on the next publish to it; an index holding a message that never
// expires has no TTL.
func TestIndexPruning(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, &redisstore.Options{ExpiredAfter: -1})
		key := st.Prefix() + ":fanout:{prune/t}"
		gone := msg("prune/t", persist.Fanout)
		gone.Expiry = time.Now().Add(time.Second)
		never := msg("prune/t", persist.Fanout)
		if err := st.Publish(ctx, gone, never); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1200 * time.Millisecond)
		last := msg("prune/t", persist.Fanout)
		last.Expiry = time.Now().Add(time.Hour)
		if err := st.Publish(ctx, last); err != nil {
			t.Fatal(err)
		}
		ids, err := c.ZRange(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 2 || !slices.Contains(ids, last.ID) || !slices.Contains(ids, never.ID) {
			t.Errorf("index after the expiry = %v, want %v", ids, []string{never.ID, last.ID})
		}
		zs, err := c.ZRangeWithScores(ctx, key+":exp", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, z := range zs {
			ids = append(ids, z.Member.(string))
		}
		if want := []string{last.ID, never.ID}; len(zs) != 2 || !slices.Contains(ids, last.ID) || !slices.Contains(ids, never.ID) {
			t.Errorf("expiry set after the expiry = %v, want %v", ids, want)
		}
		for _, z := range zs {
			if z.Member == never.ID && !math.IsInf(z.Score, 1) {
				t.Errorf("score of a message that never expires = %v, want +inf", z.Score)
			}
		}
		if d := pttl(t, c, key); d != -1 {
			t.Errorf("index TTL %v, want none: it holds a message that never expires", d)
		}
		got, err := st.FetchOffline(ctx, "c", "prune/+", persist.Fetch{})
		if err != nil || len(got) != 2 || got[0].ID != never.ID || got[1].ID != last.ID {
			t.Errorf("FetchOffline = %v, %v", got, err)
		}

		// The registry of topics forgets a topic whose messages all
		// expired, in both of its sorted sets, at the next Publish.
		brief := msg("prune/brief", persist.Fanout)
		brief.Expiry = time.Now().Add(time.Second)
		if err := st.Publish(ctx, brief); err != nil {
			t.Fatal(err)
		}
		reg := st.Prefix() + ":topics:{" + st.Prefix() + ":fanout}"
		names := func() []string {
			t.Helper()
			a, err := c.ZRange(ctx, reg, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			b, err := c.ZRange(ctx, reg+":lex", 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(a)
			if !slices.Equal(a, b) {
				t.Errorf("registry %v and its :lex twin %v differ", a, b)
			}
			return b
		}
		if got := names(); !slices.Equal(got, []string{"prune/brief", "prune/t"}) {
			t.Errorf("registry = %q, want prune/brief and prune/t", got)
		}
		time.Sleep(1200 * time.Millisecond)
		if got, err := st.FetchOffline(ctx, "c", "prune/+", persist.Fetch{}); err != nil || len(got) != 2 {
			t.Errorf("FetchOffline after prune/brief expired = %d messages, %v; want 2", len(got), err)
		}
		if err := st.Publish(ctx, msg("other/t", persist.Fanout)); err != nil {
			t.Fatal(err)
		}
		if got := names(); !slices.Equal(got, []string{"other/t", "prune/t"}) {
			t.Errorf("registry after the next Publish = %q, want other/t and prune/t", got)
		}
	})
}

// TestCursorKeys: the seeds' mqtt:acked:${clientid}:${topic} is ambiguous
// when a client ID holds ':'; such IDs are percent-encoded, so client
// "a:b" on topic "c" and client "a" on topic "b:c" keep apart.
func TestCursorKeys(t *testing.T) {
	c := singleClient(t)
	ctx := t.Context()
	st := newStore(t, c, nil)
	m1, m2 := msg("c", persist.Fanout), msg("b:c", persist.Fanout)
	if err := st.Publish(ctx, m1, m2); err != nil {
		t.Fatal(err)
	}
	if err := st.Acked(ctx, "a:b", persist.Ack{ID: m1.ID, Topic: "c"}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.FetchOffline(ctx, "a", "b:c", persist.Fetch{}); err != nil || len(got) != 1 {
		t.Errorf("client a on topic b:c after client a:b acked topic c: %d messages, %v; want 1", len(got), err)
	}
	if got, err := c.Get(ctx, st.Prefix()+":acked:a%3Ab:c").Result(); err != nil || got != m1.ID {
		t.Errorf("GET acked:a%%3Ab:c = %q, %v", got, err)
	}
	if err := st.Acked(ctx, "100%", persist.Ack{ID: m1.ID, Topic: "c"}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, st.Prefix()+":acked:100%25:c").Result(); err != nil || got != m1.ID {
		t.Errorf("GET acked:100%%25:c = %q, %v", got, err)
	}
}

// TestScriptFlush: after SCRIPT FLUSH (a restarted server) the store loads
// its scripts again, and nothing is done twice.
func TestScriptFlush(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		ctx := t.Context()
		st := newStore(t, c, nil)
		flush := func() {
			var err error
			if cc, ok := c.(*redis.ClusterClient); ok {
				err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.ScriptFlush(ctx).Err() })
			} else {
				err = c.ScriptFlush(ctx).Err()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		flush()
		var all []*persist.Message
		for i := range 20 {
			all = append(all, msg(fmt.Sprintf("flush/%d", i%4), persist.Queue))
		}
		if err := st.Publish(ctx, all...); err != nil {
			t.Fatal(err)
		}
		flush()
		got, err := st.FetchOffline(ctx, "c1", "flush/#", persist.Fetch{Mode: persist.Queue})
		if err != nil || len(got) != 20 {
			t.Fatalf("claim after SCRIPT FLUSH: %d messages, %v", len(got), err)
		}
		flush()
		acks := make([]persist.Ack, len(got))
		for i, m := range got {
			acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
		}
		if err := st.Acked(ctx, "c1", acks...); err != nil {
			t.Fatal(err)
		}
		if n := countKeys(t, c, st.Prefix()+":msg:*"); n != 0 {
			t.Errorf("%d message hashes left after acking all", n)
		}
		flush()
		r := msg("flush/r", persist.Fanout)
		if err := st.Retain(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Retained(ctx, "flush/+"); err != nil || len(got) != 1 {
			t.Errorf("Retained after SCRIPT FLUSH: %d, %v", len(got), err)
		}
	})
}

// TestTwoStoresOneQueue: two stores on one prefix (two broker nodes on one
// Redis) hand each queue message to one consumer.
func TestTwoStoresOneQueue(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		a := newStore(t, c, nil)
		b, err := redisstore.New(c, &redisstore.Options{Prefix: a.Prefix()})
		if err != nil {
			t.Fatal(err)
		}
		var all []*persist.Message
		for i := range 300 {
			all = append(all, msg(fmt.Sprintf("two/%d", i%3), persist.Queue))
		}
		if err := a.Publish(ctx, all...); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for i := range 6 {
			st := a
			if i%2 == 1 {
				st = b
			}
			wg.Go(func() {
				id := fmt.Sprintf("consumer-%d", i)
				for {
					got, err := st.FetchOffline(ctx, id, "two/+", persist.Fetch{Mode: persist.Queue, Limit: 7})
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					acks := make([]persist.Ack, len(got))
					mu.Lock()
					for j, m := range got {
						seen[m.ID]++
						acks[j] = persist.Ack{ID: m.ID, Topic: m.Topic}
					}
					mu.Unlock()
					if err := st.Acked(ctx, id, acks...); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, m := range all {
			if seen[m.ID] != 1 {
				t.Errorf("message %s handed out %d times", m.ID, seen[m.ID])
			}
		}
	})
}

// TestErrors: server errors keep their redis.Error and are not retryable;
// a client the caller closed gives ErrUnavailable.
func TestErrors(t *testing.T) {
	c := singleClient(t)
	ctx := t.Context()
	st := newStore(t, c, nil)
	if err := c.Set(ctx, st.Prefix()+":client:str", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err := st.Connected(ctx, &persist.Client{ID: "str", Online: true, OnlineAt: time.Now()})
	var re redis.Error
	var pe *persist.Error
	if !errors.As(err, &re) || !errors.As(err, &pe) || pe.Op != "Connected" || persist.IsRetryable(err) {
		t.Errorf("Connected over a string key: %v; want a *persist.Error of Connected holding the WRONGTYPE redis.Error, not retryable", err)
	}
	if _, err := st.Client(ctx, "str"); !errors.As(err, &re) {
		t.Errorf("Client of a string key: %v", err)
	}
	mine := redis.NewClient(&redis.Options{Addr: c.(*redis.Client).Options().Addr})
	st2, err := redisstore.New(mine, nil)
	if err != nil {
		t.Fatal(err)
	}
	mine.Close()
	err = st2.Publish(ctx, msg("x", persist.Fanout))
	if !errors.Is(err, redis.ErrClosed) || persist.IsRetryable(err) {
		t.Errorf("Publish on a client the caller closed: %v; want redis.ErrClosed, not retryable", err)
	}
	// Invalid input names what was wrong.
	for _, c := range []struct {
		err  error
		says string
	}{
		{st.Publish(ctx, &persist.Message{Topic: "no/id"}), "message ID is empty"},
		{st.Publish(ctx, &persist.Message{ID: "1", Topic: "t", QoS: 3}), "QoS is 3"},
		{st.Connected(ctx, &persist.Client{}), "client ID is empty"},
		{st.Acked(ctx, "c", persist.Ack{Topic: "t"}), "message ID is empty"},
		{st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "a", QoS: 3}}, nil), "QoS is 3"},
	} {
		if !errors.Is(c.err, persist.ErrInvalid) || !strings.Contains(fmt.Sprint(c.err), c.says) {
			t.Errorf("%v: want an error matching ErrInvalid that says %q", c.err, c.says)
		}
	}
}

// TestChunks publishes more than one script call takes (1,300 messages on
// one topic, 1,200 topics) and fetches with a small FetchChunk, so every
// chunked path runs.
func TestChunks(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, &redisstore.Options{FetchChunk: 7})
		for _, mode := range []persist.Mode{persist.Fanout, persist.Queue} {
			var all []*persist.Message
			for i := range 2500 {
				topic := "chunk/one"
				if i%2 == 1 && len(all) < 2400 {
					topic = fmt.Sprintf("chunk/%d", i/2)
				}
				all = append(all, msg(topic, mode))
			}
			if err := st.Publish(ctx, all...); err != nil {
				t.Fatal(err)
			}
			got, err := st.FetchOffline(ctx, "c", "chunk/+", persist.Fetch{Mode: mode, Limit: 2000})
			if err != nil || len(got) != 2000 {
				t.Fatalf("%v: FetchOffline with Limit 2000 = %d messages, %v", mode, len(got), err)
			}
			for i, m := range got {
				if m.ID != all[i].ID {
					t.Fatalf("%v: message %d is %s, want %s", mode, i, m.ID, all[i].ID)
				}
			}
			rest, err := st.FetchOffline(ctx, "c2", "chunk/#", persist.Fetch{Mode: mode})
			want := 2500
			if mode == persist.Queue {
				want = 500 // the first 2000 are claimed
			}
			if err != nil || len(rest) != want {
				t.Errorf("%v: FetchOffline of the rest = %d messages, %v; want %d", mode, len(rest), err, want)
			}
		}
	})
}

// TestPackedSizes: messages whose payloads, topics and properties have
// the lengths at which MessagePack's string headers change (publishScript
// takes a batch packed, see packer), with every byte value, are read back
// byte for byte, in one batch and one by one.
func TestPackedSizes(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		st := newStore(t, c, nil)
		var batch []*persist.Message
		for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000} {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(i * 7)
			}
			m := msg("pack/"+strings.Repeat("t", n%300), persist.Fanout)
			m.Payload = p
			m.Username = strings.Repeat("u", n%40)
			m.Props.ContentType = strings.Repeat("c", n%1000)
			m.Props.User = []persist.UserProperty{{Key: "k", Value: strings.Repeat("v", n%70000)}}
			batch = append(batch, m)
		}
		if err := st.Publish(t.Context(), batch...); err != nil {
			t.Fatal(err)
		}
		for _, m := range batch {
			if err := st.Publish(t.Context(), m); err != nil { // again, alone
				t.Fatal(err)
			}
			got, err := st.FetchOffline(t.Context(), "packreader", m.Topic, persist.Fetch{Mode: persist.Fanout})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("payload of %d bytes: fetched %d messages, want 1", len(m.Payload), len(got))
			}
			g := got[0]
			if g.ID != m.ID || !bytes.Equal(g.Payload, m.Payload) || g.Username != m.Username ||
				g.Props.ContentType != m.Props.ContentType || len(g.Props.User) != 1 || g.Props.User[0] != m.Props.User[0] {
				t.Errorf("payload of %d bytes: read back %q (%d bytes payload), want %q", len(m.Payload), g.ID, len(g.Payload), m.ID)
			}
		}
	})
}
