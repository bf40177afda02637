package storekit_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/storekit"
)

var errDown = errors.New("server went away")

func newKit() *storekit.Kit {
	return storekit.New("teststore", persist.Limits{Topic: 16}, func(err error) (error, bool) {
		if errors.Is(err, errDown) {
			return persist.ErrUnavailable, true
		}
		return nil, false
	})
}

func TestGateAndErrors(t *testing.T) {
	k := newKit()
	ctx := t.Context()
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := k.Enter(done, "Publish"); !errors.Is(err, context.Canceled) {
		t.Errorf("Enter with a done context = %v, want context.Canceled as is", err)
	}
	err := k.Fail(ctx, "Publish", errDown)
	if !errors.Is(err, persist.ErrUnavailable) || !errors.Is(err, errDown) || !persist.IsRetryable(err) {
		t.Errorf("Fail(errDown) = %v, want retryable ErrUnavailable wrapping it", err)
	}
	if got, want := err.Error(), "teststore: Publish: server went away"; got != want {
		t.Errorf("error text %q, want %q", got, want)
	}
	described := k.Fail(ctx, "Retained", &persist.Error{What: `retained "a"`, Err: syscall.ECONNRESET})
	if !persist.IsRetryable(described) || described.Error() != `teststore: Retained retained "a": `+syscall.ECONNRESET.Error() {
		t.Errorf("Fail of a described error = %q (retryable %v)", described, persist.IsRetryable(described))
	}
	if k.Fail(done, "Publish", errDown) != context.Canceled {
		t.Error("Fail with a done context does not return the context's error")
	}
	if !k.Close() || k.Close() || !k.Closed() {
		t.Error("Close reports the first call only")
	}
	if err := k.Enter(ctx, "Acked"); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Enter after Close = %v, want ErrClosed", err)
	}
	if err := k.Fail(ctx, "Acked", errDown); !errors.Is(err, persist.ErrClosed) || !errors.Is(err, errDown) {
		t.Errorf("Fail after Close = %v, want ErrClosed wrapping the cause", err)
	}
}

func TestChecks(t *testing.T) {
	k := newKit()
	ctx := t.Context()
	long := &persist.Message{ID: persist.NewID(), Topic: "a/very/long/topic/name"}
	_, err := k.Publish(ctx, []*persist.Message{long})
	if !errors.Is(err, persist.ErrInvalid) || !strings.HasPrefix(err.Error(), `teststore: Publish message 0 (topic "a/very/long/topic/name"): topic name is 22 bytes, more than 16`) {
		t.Errorf("Publish of a topic over the limit = %v", err)
	}
	if _, err := k.Fetch(ctx, "c", "a/#", persist.Fetch{Since: -time.Second}); !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("Fetch with Since -1s = %v, want ErrInvalid", err)
	}
	if err := k.Lookup(ctx, "Client", ""); !errors.Is(err, persist.ErrInvalid) || strings.Count(err.Error(), "teststore") != 1 {
		t.Errorf("Lookup of an empty client ID = %v, want ErrInvalid naming the store once", err)
	}
}

func TestPublishPrepares(t *testing.T) {
	k := newKit()
	a := &persist.Message{ID: persist.NewID(), Topic: "t"}
	gone := &persist.Message{ID: persist.NewID(), Topic: "t", Expiry: time.Now().Add(-time.Second)}
	b := &persist.Message{ID: persist.NewID(), Topic: "t"}
	again := &persist.Message{ID: a.ID, Topic: "t", Payload: []byte("second copy")}
	got, err := k.Publish(t.Context(), []*persist.Message{a, gone, b, again})
	if err != nil || len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("Publish kept %v, %v; want a and b (the expired one and the repeated ID left out)", got, err)
	}
}

func TestSubscriptions(t *testing.T) {
	subs := []persist.Subscription{{Filter: "a", QoS: 0}, {Filter: "b", QoS: 1}, {Filter: "a", QoS: 2}}
	got := storekit.Subscriptions(subs)
	if len(got) != 2 || got[0].Filter != "b" || got[1].Filter != "a" || got[1].QoS != 2 {
		t.Errorf("Subscriptions = %+v, want b then the last a (QoS 2)", got)
	}
	if s := storekit.Start(&persist.Subscription{History: true}); s != "" {
		t.Errorf("Start with History = %q, want \"\"", s)
	}
	before := persist.NewID()
	if s := storekit.Start(&persist.Subscription{}); s <= before {
		t.Errorf("Start = %q, not after an ID made before it (%q)", s, before)
	}
	if s := storekit.Start(&persist.Subscription{Start: before}); s != before {
		t.Errorf("Start of a subscription with Start %q = %q", before, s)
	}
	if s := storekit.Start(&persist.Subscription{Start: before, History: true}); s != "" {
		t.Errorf("Start with History and a Start = %q, want none", s)
	}
}

func TestCursors(t *testing.T) {
	acks := []persist.Ack{{ID: "03", Topic: "b"}, {ID: "05", Topic: "a"}, {ID: "09", Topic: "a"}, {ID: "07", Topic: "a"}, {ID: "99", Topic: "q"}}
	got := storekit.Cursors(acks, func(i int) bool { return acks[i].Topic != "q" })
	want := []persist.Ack{{ID: "09", Topic: "a"}, {ID: "03", Topic: "b"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Cursors = %v, want %v", got, want)
	}
}

func TestQueryFinish(t *testing.T) {
	k := newKit()
	q, err := k.Fetch(t.Context(), "c", "$share/g/s/+", persist.Fetch{Limit: 2, Since: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if q.Match != "s/+" || q.Filter != "$share/g/s/+" || q.Fetch.Lease != persist.DefaultLease {
		t.Fatalf("query %+v", q)
	}
	now := time.Now()
	m := func(id, tp string, at time.Time, exp time.Time) *persist.Message {
		return &persist.Message{ID: id, Topic: tp, Time: at, Expiry: exp}
	}
	in := []*persist.Message{
		m("05", "s/x", now, time.Time{}),
		m("01", "s/x", now.Add(-time.Hour), time.Time{}), // before Since
		m("03", "s/y", now, now.Add(-time.Second)),       // expired
		m("02", "s/z", now, time.Time{}),
		m("04", "other", now, time.Time{}), // no match
		m("06", "s/w", now, time.Time{}),   // past the limit
		nil,
	}
	got := q.Finish(in)
	if len(got) != 2 || got[0].ID != "02" || got[1].ID != "05" {
		t.Errorf("Finish = %v, want 02 and 05", got)
	}
}
