package redisstore_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// cursor reads a client's watermark of a topic and the sizes of its acks
// and passed sets, by the key names the package doc gives.
func cursor(t *testing.T, c redis.UniversalClient, st *redisstore.Store, client, topic string) (w int64, acks, passed int64) {
	t.Helper()
	ctx := t.Context()
	base := st.Prefix() + ":cursor:{" + client + "}:"
	v, err := c.Get(ctx, base+"w:"+topic).Result()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	if v != "" {
		if w, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("watermark %q: %v", v, err)
		}
	}
	if acks, err = c.ZCard(ctx, base+"a:"+topic).Result(); err != nil {
		t.Fatal(err)
	}
	if passed, err = c.ZCard(ctx, base+"p:"+topic).Result(); err != nil {
		t.Fatal(err)
	}
	return w, acks, passed
}

// baseOf reads a client's base of a topic (see the package doc: the
// messages at positions in (from, to] with IDs at or before start, passed
// unacked) and the size of its set of kept acks; to is 0 without a base.
func baseOf(t *testing.T, c redis.UniversalClient, st *redisstore.Store, client, topic string) (from, to int64, start string, kept int64) {
	t.Helper()
	ctx := t.Context()
	base := st.Prefix() + ":cursor:{" + client + "}:"
	v, err := c.HMGet(ctx, base+"b:"+topic, "from", "to", "start").Result()
	if err != nil {
		t.Fatal(err)
	}
	if v[1] != nil {
		if from, err = strconv.ParseInt(v[0].(string), 10, 64); err != nil {
			t.Fatalf("base from %q: %v", v[0], err)
		}
		if to, err = strconv.ParseInt(v[1].(string), 10, 64); err != nil {
			t.Fatalf("base to %q: %v", v[1], err)
		}
		start, _ = v[2].(string)
	}
	if kept, err = c.ZCard(ctx, base+"k:"+topic).Result(); err != nil {
		t.Fatal(err)
	}
	return from, to, start, kept
}

// substart reads the start of a client's subscription.
func substart(t *testing.T, c redis.UniversalClient, st *redisstore.Store, client, filter string) string {
	t.Helper()
	v, err := c.HGet(t.Context(), st.Prefix()+":substart:"+client, filter).Result()
	if err != nil {
		t.Fatalf("HGET the start of %s's %s: %v", client, filter, err)
	}
	return v
}

// counter reads a topic's counter of positions.
func counter(t *testing.T, c redis.UniversalClient, st *redisstore.Store, topic string) int64 {
	t.Helper()
	n, err := c.Get(t.Context(), st.Prefix()+":fanout:{"+topic+"}:seq").Int64()
	if err != nil {
		t.Fatalf("GET the counter of %s: %v", topic, err)
	}
	return n
}

func ackAll(t *testing.T, st persist.Store, client string, msgs ...*persist.Message) {
	t.Helper()
	acks := make([]persist.Ack, len(msgs))
	for i, m := range msgs {
		acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
	}
	if err := st.Acked(t.Context(), client, acks...); err != nil {
		t.Fatal(err)
	}
}

func fetchIDs(t *testing.T, st persist.Store, client, filter string) []string {
	t.Helper()
	got, err := st.FetchOffline(t.Context(), client, filter, persist.Fetch{Mode: persist.Fanout})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.ID
	}
	return ids
}

func idsOf(msgs ...*persist.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

// TestWatermark: acks in order, in reverse order and with one message
// left for last move the watermark to the topic's counter once every
// message is acked, and leave no individual acks behind.
func TestWatermark(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		st := newStore(t, c, nil)
		var all []*persist.Message
		for range 300 {
			all = append(all, msg("wm/t", persist.Fanout))
		}
		if err := st.Publish(t.Context(), all...); err != nil {
			t.Fatal(err)
		}
		top := counter(t, c, st, "wm/t")

		for _, m := range all[:50] { // one by one, in order
			ackAll(t, st, "inorder", m)
			if _, acks, _ := cursor(t, c, st, "inorder", "wm/t"); acks != 0 {
				t.Fatalf("in order: %d acks kept above the watermark", acks)
			}
		}
		if w, _, _ := cursor(t, c, st, "inorder", "wm/t"); w != top-250 {
			t.Errorf("in order: watermark %d after 50 of 300, want %d", w, top-250)
		}
		if got := fetchIDs(t, st, "inorder", "wm/t"); !slices.Equal(got, idsOf(all[50:]...)) {
			t.Errorf("in order: fetched %d messages, want the last 250", len(got))
		}

		for i := len(all) - 1; i >= 0; i -= 10 { // in reverse, ten a call
			ackAll(t, st, "reverse", all[max(i-9, 0):i+1]...)
		}
		if w, acks, _ := cursor(t, c, st, "reverse", "wm/t"); w != top || acks != 0 {
			t.Errorf("in reverse: watermark %d with %d acks, want %d with none", w, acks, top)
		}

		ackAll(t, st, "last", all[1:]...) // all but #0: the watermark stays
		if w, acks, _ := cursor(t, c, st, "last", "wm/t"); w >= top-299 || acks != 299 {
			t.Errorf("#0 unacked: watermark %d with %d acks, want below %d with 299", w, acks, top-299)
		}
		if got := fetchIDs(t, st, "last", "wm/t"); !slices.Equal(got, idsOf(all[0])) {
			t.Errorf("#0 unacked: fetched %v, want #0 alone", got)
		}
		ackAll(t, st, "last", all[0])
		if w, acks, _ := cursor(t, c, st, "last", "wm/t"); w != top || acks != 0 {
			t.Errorf("after #0: watermark %d with %d acks, want %d with none", w, acks, top)
		}
		if got := fetchIDs(t, st, "last", "wm/t"); len(got) != 0 {
			t.Errorf("after acking everything: fetched %d", len(got))
		}

		// Publishing an ID again keeps its position.
		before, err := c.ZScore(t.Context(), st.Prefix()+":fanout:{wm/t}", all[7].ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Publish(t.Context(), all[7]); err != nil {
			t.Fatal(err)
		}
		if after, err := c.ZScore(t.Context(), st.Prefix()+":fanout:{wm/t}", all[7].ID).Result(); err != nil || after != before {
			t.Errorf("position of a message published again: %v, %v; want %v", after, err, before)
		}
		if got := fetchIDs(t, st, "last", "wm/t"); len(got) != 0 {
			t.Errorf("after publishing an acked message again: fetched %d", len(got))
		}
	})
}

// TestHistoryBeforeSubscription: messages stored before a subscription
// (without History) do not hold the watermark back; the watermark
// remembers them, as one range (the base), so that a fetch by a filter
// with no stored subscription, or by a later subscription with History,
// still returns them.
func TestHistoryBeforeSubscription(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, nil)
		var old []*persist.Message
		for range 40 {
			old = append(old, msg("hist/t", persist.Fanout))
		}
		if err := st.Publish(ctx, old...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		if err := st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "hist/+", QoS: 1}}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		var recent []*persist.Message
		for range 5 {
			recent = append(recent, msg("hist/t", persist.Fanout))
		}
		if err := st.Publish(ctx, recent...); err != nil {
			t.Fatal(err)
		}
		if got := fetchIDs(t, st, "c", "hist/+"); !slices.Equal(got, idsOf(recent...)) {
			t.Fatalf("the subscription's fetch: %d messages, want the 5 after it", len(got))
		}
		for _, m := range recent {
			ackAll(t, st, "c", m)
		}
		top := counter(t, c, st, "hist/t")
		w, acks, passed := cursor(t, c, st, "c", "hist/t")
		if w != top || acks != 0 || passed != 0 {
			t.Errorf("watermark %d (counter %d), %d acks, %d passed; want the counter, none, none (the base holds them)", w, top, acks, passed)
		}
		if from, to, start, kept := baseOf(t, c, st, "c", "hist/t"); from != 0 || to != top || start != substart(t, c, st, "c", "hist/+") || kept != 0 {
			t.Errorf("base (%d, %d] start %q, %d kept; want (0, the counter %d], the subscription's start, none", from, to, start, kept, top)
		}
		if got := fetchIDs(t, st, "c", "hist/+"); len(got) != 0 {
			t.Errorf("the subscription's fetch after the acks: %d messages", len(got))
		}
		if got := fetchIDs(t, st, "c", "hist/t"); !slices.Equal(got, idsOf(old...)) {
			t.Errorf("a fetch with no stored subscription: %d messages, want the 40 before the subscription", len(got))
		}
		if err := st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "hist/#", QoS: 1, History: true}}, nil); err != nil {
			t.Fatal(err)
		}
		if got := fetchIDs(t, st, "c", "hist/#"); !slices.Equal(got, idsOf(old...)) {
			t.Errorf("a later subscription with History: %d messages, want the 40", len(got))
		}
		ackAll(t, st, "c", old[3], old[30])
		if _, _, passed := cursor(t, c, st, "c", "hist/t"); passed != 0 {
			t.Errorf("after acking 2 of them: %d passed, want none", passed)
		}
		if _, _, _, kept := baseOf(t, c, st, "c", "hist/t"); kept != 2 {
			t.Errorf("after acking 2 of them: %d acks kept, want 2", kept)
		}
		if got := fetchIDs(t, st, "c", "hist/#"); len(got) != 38 {
			t.Errorf("after acking 2 of them: %d fetched, want 38", len(got))
		}
	})
}

// TestBaseLongPast: a new subscriber on a topic with a past longer than
// an ack's scan examines at once acks the messages published after it
// one by one; its watermark passes the whole past at the first ack, kept
// as one range (the base), not one entry per message, and a fetch with an
// earlier start (no stored subscription, or a subscription with History)
// returns exactly the past it did not ack: not the message of the past it
// acked before subscribing (above the watermark then), nor the one it
// acked after the watermark passed it, nor an older-ID message stored
// after the subscription that it acked; but the older-ID message stored
// after the subscription that it did not ack.
func TestBaseLongPast(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, nil)
		const topic = "long/t"
		past := make([]*persist.Message, 3000)
		for i := range past {
			past[i] = msg(topic, persist.Fanout)
		}
		for i := 0; i < len(past); i += 500 {
			if err := st.Publish(ctx, past[i:i+500]...); err != nil {
				t.Fatal(err)
			}
		}
		lateAcked, lateKept := msg(topic, persist.Fanout), msg(topic, persist.Fanout)
		ackAll(t, st, "c", past[5]) // delivered live while it subscribed
		time.Sleep(2 * time.Millisecond)
		if err := st.Subscribed(ctx, "c", []persist.Subscription{{Filter: topic, QoS: 1}}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		recent := make([]*persist.Message, 12)
		for i := range recent {
			recent[i] = msg(topic, persist.Fanout)
		}
		if err := st.Publish(ctx, recent[:6]...); err != nil {
			t.Fatal(err)
		}
		if err := st.Publish(ctx, lateAcked, lateKept); err != nil { // older IDs, stored after the subscription
			t.Fatal(err)
		}
		if err := st.Publish(ctx, recent[6:]...); err != nil {
			t.Fatal(err)
		}
		first, err := c.ZScore(ctx, st.Prefix()+":fanout:{"+topic+"}", past[0].ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		next, err := c.ZScore(ctx, st.Prefix()+":fanout:{"+topic+"}", recent[1].ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		ackAll(t, st, "c", recent[0])
		if w, _, _ := cursor(t, c, st, "c", topic); w != int64(next)-1 {
			t.Errorf("after the first ack the watermark is %d, want %d: just before the next message (it passed the whole past)", w, int64(next)-1)
		}
		ackAll(t, st, "c", past[7], lateAcked)
		for _, m := range recent[1:] {
			ackAll(t, st, "c", m)
		}
		top := counter(t, c, st, topic)
		if w, acks, passed := cursor(t, c, st, "c", topic); w != top || acks != 0 || passed != 0 {
			t.Errorf("watermark %d (counter %d), %d acks, %d passed; want the counter, none, none", w, top, acks, passed)
		}
		// The ack before the subscription (of a message due then) left
		// the watermark just before the first message.
		if from, to, start, kept := baseOf(t, c, st, "c", topic); from != int64(first)-1 || to != top || start != substart(t, c, st, "c", topic) || kept != 3 {
			t.Errorf("base (%d, %d] start %q, %d kept; want (%d, the counter %d], the subscription's start, 3 (the past acked)", from, to, start, kept, int64(first)-1, top)
		}
		if got := fetchIDs(t, st, "c", topic); len(got) != 0 {
			t.Errorf("the subscription's own fetch: %d messages, want none", len(got))
		}
		var want []*persist.Message
		for i, m := range past {
			if i != 5 && i != 7 {
				want = append(want, m)
			}
		}
		want = append(want, lateKept)
		if got := fetchIDs(t, st, "c", "long/+"); !slices.Equal(got, idsOf(want...)) {
			t.Errorf("a fetch with no stored subscription: %d messages, want the %d of the past not acked", len(got), len(want))
		}
		if err := st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "long/#", QoS: 1, History: true}}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := st.FetchOffline(ctx, "c", "long/#", persist.Fetch{Mode: persist.Fanout, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if ids := idsOf(got...); !slices.Equal(ids, idsOf(want...)[:100]) {
			t.Errorf("a subscription with History, Limit 100: %d messages, want the first 100 of the past not acked", len(ids))
		}
		ackAll(t, st, "c", past[0], lateKept)
		if got := fetchIDs(t, st, "c", "long/#"); !slices.Equal(got, idsOf(want[1:len(want)-1]...)) {
			t.Errorf("after acking two more of the past: %d messages, want %d", len(got), len(want)-2)
		}
		if got := fetchIDs(t, st, "other", topic); len(got) != len(past)+len(recent)+2 {
			t.Errorf("another client: %d messages, want all %d", len(got), len(past)+len(recent)+2)
		}
	})
}

// TestBaseStartChanged: when the client's start of a topic changes while
// its cursor is kept, what its watermark passes later is not in the base
// (whose start is the old one): it is kept in the passed set, and a fetch
// with an earlier start returns both.
func TestBaseStartChanged(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, nil)
		const topic = "moved/t"
		batch := func(n int) []*persist.Message {
			t.Helper()
			out := make([]*persist.Message, n)
			for i := range out {
				out[i] = msg(topic, persist.Fanout)
			}
			if err := st.Publish(ctx, out...); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
			return out
		}
		subscribe := func(subs []persist.Subscription, removed []string) {
			t.Helper()
			if err := st.Subscribed(ctx, "c", subs, removed); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		past1 := batch(5)
		subscribe([]persist.Subscription{{Filter: topic, QoS: 1}}, nil)
		ackAll(t, st, "c", batch(3)...)
		_, to1, start1, _ := baseOf(t, c, st, "c", topic)
		if w, _, passed := cursor(t, c, st, "c", topic); to1 != w || passed != 0 {
			t.Fatalf("base to %d, watermark %d, %d passed; want the base to the watermark, none passed", to1, w, passed)
		}
		subscribe(nil, []string{topic})
		past2 := batch(4)
		subscribe([]persist.Subscription{{Filter: "moved/+", QoS: 1}}, nil)
		ackAll(t, st, "c", batch(3)...)
		if _, to, start, _ := baseOf(t, c, st, "c", topic); to != to1 || start != start1 {
			t.Errorf("base to %d start %q after the start changed, want the same as before (%d, %q)", to, start, to1, start1)
		}
		if w, _, passed := cursor(t, c, st, "c", topic); w != counter(t, c, st, topic) || passed != int64(len(past2)) {
			t.Errorf("watermark %d (counter %d), %d passed; want the counter, %d", w, counter(t, c, st, topic), passed, len(past2))
		}
		if got := fetchIDs(t, st, "c", "moved/+"); len(got) != 0 {
			t.Errorf("the subscription's own fetch: %d messages, want none", len(got))
		}
		if got := fetchIDs(t, st, "c", topic); !slices.Equal(got, idsOf(slices.Concat(past1, past2)...)) {
			t.Errorf("a fetch with no stored subscription: %d messages, want the %d of both pasts", len(got), len(past1)+len(past2))
		}
		ackAll(t, st, "c", past1[0], past2[0])
		if _, _, passed := cursor(t, c, st, "c", topic); passed != int64(len(past2)-1) {
			t.Errorf("after acking one of each: %d passed, want %d", passed, len(past2)-1)
		}
		if got := fetchIDs(t, st, "c", topic); !slices.Equal(got, idsOf(slices.Concat(past1[1:], past2[1:])...)) {
			t.Errorf("after acking one of each: %d messages, want %d", len(got), len(past1)+len(past2)-2)
		}
	})
}

// TestNewSubscriberPages: a new subscriber's fetches on a topic with a
// past read the IDs after its start (the topic's ID set), a limit at a
// time, in ID order; on a topic whose ID set lacks IDs (written by a
// version before it) they read by position, and its acks scan the past,
// with the same results.
func TestNewSubscriberPages(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, nil)
		for _, name := range []string{"pages", "old"} {
			topic := name + "/t"
			past := make([]*persist.Message, 600)
			for i := range past {
				past[i] = msg(topic, persist.Fanout)
			}
			if err := st.Publish(ctx, past...); err != nil {
				t.Fatal(err)
			}
			if name == "old" {
				if err := c.Del(ctx, st.Prefix()+":fanout:{"+topic+"}:ids").Err(); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(2 * time.Millisecond)
			client := "c-" + topic
			if err := st.Subscribed(ctx, client, []persist.Subscription{{Filter: topic, QoS: 1}}, nil); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
			recent := make([]*persist.Message, 25)
			for i := range recent {
				recent[i] = msg(topic, persist.Fanout)
			}
			if err := st.Publish(ctx, recent...); err != nil {
				t.Fatal(err)
			}
			var all []string
			for range 10 {
				got, err := st.FetchOffline(ctx, client, topic, persist.Fetch{Mode: persist.Fanout, Limit: 7})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 {
					break
				}
				all = append(all, idsOf(got...)...)
				ackAll(t, st, client, got...)
			}
			if !slices.Equal(all, idsOf(recent...)) {
				t.Errorf("%s: pages of 7 gave %d messages, want the %d after the subscription, in ID order", topic, len(all), len(recent))
			}
			if w, acks, _ := cursor(t, c, st, client, topic); w != counter(t, c, st, topic) || acks != 0 {
				t.Errorf("%s: watermark %d (counter %d) with %d acks, want the counter with none", topic, w, counter(t, c, st, topic), acks)
			}
			if got := fetchIDs(t, st, client, name+"/+"); !slices.Equal(got, idsOf(past...)) {
				t.Errorf("%s: a fetch with no stored subscription: %d messages, want the %d of the past", topic, len(got), len(past))
			}
		}
	})
}

// TestAckBeforeStore: an ack of a message not stored yet is kept (scored
// by the time of the ack), counts once the message is stored, and leaves
// with the watermark; acks of messages never stored leave after the TTL.
func TestAckBeforeStore(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		st := newStore(t, c, &redisstore.Options{ExpiredAfter: 3 * time.Second})
		early, next, never := msg("abs/t", persist.Fanout), msg("abs/t", persist.Fanout), msg("abs/t", persist.Fanout)
		ackAll(t, st, "c", early, never)
		if _, acks, _ := cursor(t, c, st, "c", "abs/t"); acks != 2 {
			t.Fatalf("%d acks kept, want 2", acks)
		}
		if err := st.Publish(t.Context(), early, next); err != nil {
			t.Fatal(err)
		}
		if got := fetchIDs(t, st, "c", "abs/t"); !slices.Equal(got, idsOf(next)) {
			t.Errorf("fetched %v, want the one not acked", got)
		}
		ackAll(t, st, "c", next)
		w, acks, _ := cursor(t, c, st, "c", "abs/t")
		if w != counter(t, c, st, "abs/t") || acks != 1 {
			t.Errorf("watermark %d (counter %d) with %d acks; want the counter, with the ack of the message never stored", w, counter(t, c, st, "abs/t"), acks)
		}
		// Acks 1.7 s apart keep the set's key alive; the second comes
		// after the TTL of the ack of the message never stored.
		for range 2 {
			time.Sleep(1700 * time.Millisecond)
			other := msg("abs/t", persist.Fanout)
			if err := st.Publish(t.Context(), other); err != nil {
				t.Fatal(err)
			}
			ackAll(t, st, "c", other)
		}
		if _, acks, _ := cursor(t, c, st, "c", "abs/t"); acks != 0 {
			t.Errorf("%d acks kept after the TTL, want none", acks)
		}
	})
}

// TestCounterAnew: a topic whose keys expired (all its messages did), or
// whose counter went back, gives positions above the old ones, so a
// client's watermark of the old counter skips none of the new messages.
func TestCounterAnew(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, nil)
		var first []*persist.Message
		for range 20 {
			first = append(first, msg("anew/t", persist.Fanout))
		}
		if err := st.Publish(ctx, first...); err != nil {
			t.Fatal(err)
		}
		ackAll(t, st, "c", first...)
		w, _, _ := cursor(t, c, st, "c", "anew/t")
		base := st.Prefix() + ":fanout:{anew/t}"
		for _, k := range []string{base, base + ":seq", base + ":exp", base + ":ids"} { // as when they expire
			if err := c.Del(ctx, k).Err(); err != nil {
				t.Fatal(err)
			}
		}
		m := msg("anew/t", persist.Fanout)
		if err := st.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		if n := counter(t, c, st, "anew/t"); n <= w {
			t.Errorf("new counter %d, not above the watermark %d of the old one", n, w)
		}
		if got := fetchIDs(t, st, "c", "anew/t"); !slices.Equal(got, idsOf(m)) {
			t.Errorf("fetched %v after the topic's keys were made anew, want the new message", got)
		}

		// A failover that lost the latest writes leaves the counter behind
		// a watermark (on another master of a Cluster): positions still
		// follow the clock, above it.
		ackAll(t, st, "c", m)
		w, _, _ = cursor(t, c, st, "c", "anew/t")
		if err := c.Set(ctx, base+":seq", w-100, 0).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		m2 := msg("anew/t", persist.Fanout)
		if err := st.Publish(ctx, m2); err != nil {
			t.Fatal(err)
		}
		if got := fetchIDs(t, st, "c", "anew/t"); !slices.Equal(got, idsOf(m2)) {
			t.Errorf("fetched %v after the counter went back, want the new message", got)
		}
	})
}

// TestHashTags: names holding '{', '}' and '%' still put a topic's keys,
// and a client's cursor keys, in one Cluster slot each, and work.
func TestHashTags(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		for _, tc := range []struct{ client, topic string }{
			{"c{1}", "a{b}c"}, {"}c", "}x"}, {"{}", "{"}, {"100%", "%7B/}/{x}"},
		} {
			st := newStore(t, c, nil)
			o := sharedStore(t, c, st, nil)
			m1, m2 := msg(tc.topic, persist.Fanout), msg(tc.topic, persist.Fanout)
			if err := st.Publish(ctx, m1); err != nil {
				t.Fatalf("%q: %v", tc.topic, err)
			}
			if err := o.Publish(ctx, m2); err != nil {
				t.Fatalf("%q: %v", tc.topic, err)
			}
			ackAll(t, o, tc.client, m2)
			if got := fetchIDs(t, st, tc.client, "#"); !slices.Equal(got, idsOf(m1)) {
				t.Errorf("client %q, topic %q: fetched %v, want %v", tc.client, tc.topic, got, idsOf(m1))
			}
			ackAll(t, st, tc.client, m1)
			if got := fetchIDs(t, o, tc.client, tc.topic); len(got) != 0 {
				t.Errorf("client %q, topic %q: fetched %d after acking both", tc.client, tc.topic, len(got))
			}
			cc, ok := c.(*redis.ClusterClient)
			if !ok {
				continue
			}
			slots := func(what string, ks ...string) {
				t.Helper()
				var first int64 = -1
				for _, k := range ks {
					n, err := cc.ClusterKeySlot(ctx, k).Result()
					if err != nil {
						t.Fatal(err)
					}
					if first >= 0 && n != first {
						t.Errorf("%s: %q in slot %d, not %d", what, k, n, first)
					}
					first = n
				}
			}
			keys := func(pattern string) []string {
				var mu sync.Mutex
				var out []string
				err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
					ks, err := n.Keys(ctx, pattern).Result()
					mu.Lock()
					out = append(out, ks...)
					mu.Unlock()
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			slots("topic "+tc.topic, keys(globEscape(st.Prefix())+":fanout:*")...)
			slots("client "+tc.client, keys(globEscape(st.Prefix())+":cursor:*")...)
		}
	})
}

// globEscape escapes the glob specials of s for KEYS.
func globEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// TestWatermarkPassesExpired: an unacked message that expired before the
// next one was acked does not hold the watermark back (an ack's scan
// reads expiries only when one in the topic may have passed: here one
// has).
func TestWatermarkPassesExpired(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		st := newStore(t, c, nil)
		short, long := msg("wmexp/t", persist.Fanout), msg("wmexp/t", persist.Fanout)
		short.Expiry = time.Now().Add(time.Second)
		if err := st.Publish(t.Context(), short, long); err != nil {
			t.Fatal(err)
		}
		top := counter(t, c, st, "wmexp/t")
		time.Sleep(1200 * time.Millisecond)
		ackAll(t, st, "c", long)
		if w, acks, _ := cursor(t, c, st, "c", "wmexp/t"); w != top || acks != 0 {
			t.Errorf("watermark %d with %d acks, want %d with none: the expired message held it back", w, acks, top)
		}
	})
}
