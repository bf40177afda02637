package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
)

// TestSlowWrite stops a Publish of node A between its stamp and its
// insert (as a slow write would), while node B stores a message stamped
// later that a client fetches and acks, and the settled horizon passes
// both stamps: the client's cursor must not pass A's message, which is
// delivered once its write lands.
func TestSlowWrite(t *testing.T) {
	ctx := t.Context()
	a, nb := slowPair(t)

	// A stamps its write and stops.
	stamp, token, err := a.beginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow := &persist.Message{ID: persist.NewID(), Topic: "slow/t", Payload: []byte("slow"), QoS: 1, Time: time.Now()}
	time.Sleep(5 * time.Millisecond)
	fast := &persist.Message{ID: persist.NewID(), Topic: "slow/t", Payload: []byte("fast"), QoS: 1, Time: time.Now()}
	if err := nb.Publish(ctx, fast); err != nil {
		t.Fatal(err)
	}
	fetch := func(st *Store) []string {
		t.Helper()
		got, err := st.FetchOffline(ctx, "c", "slow/+", persist.Fetch{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range got {
			ids = append(ids, string(m.Payload))
		}
		return ids
	}
	if got := fetch(nb); len(got) != 1 || got[0] != "fast" {
		t.Fatalf("B's message: %v", got)
	}
	if err := nb.Acked(ctx, "c", persist.Ack{ID: fast.ID, Topic: fast.Topic}); err != nil {
		t.Fatal(err)
	}
	// Both stamps are settled but for A's write, which is still running:
	// fetches on either node pass nothing of A's.
	time.Sleep(200 * time.Millisecond)
	for range 3 {
		if got := fetch(nb); len(got) != 0 {
			t.Fatalf("after acking B's message: %v", got)
		}
		if got := fetch(a); len(got) != 0 {
			t.Fatalf("after acking B's message, on A: %v", got)
		}
	}
	// A's write lands.
	if _, err := a.msg.InsertOne(ctx, messageDoc(slow, stamp, a.opt.PayloadFormat)); err != nil {
		t.Fatal(err)
	}
	a.endWrite(token)
	if got := fetch(nb); len(got) != 1 || got[0] != "slow" {
		t.Fatalf("A's slow message, stamped before B's that was acked: got %v, want it", got)
	}
}

// slowPair opens two stores, a and b, as two nodes on a fresh database
// (a ClockSkew of 20 ms).
func slowPair(t *testing.T) (a, b *Store) {
	t.Helper()
	u := testenv.Getenv(t, "MQTTPERSIST_MONGODB_URL")
	c, err := mongo.Connect(options.Client().ApplyURI(u).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	ctx := t.Context()
	if err := c.Ping(ctx, nil); err != nil {
		testenv.Unavailable(t, "MQTTPERSIST_MONGODB_URL", "server unreachable: %v", err)
	}
	rb := make([]byte, 6)
	_, _ = rand.Read(rb)
	db := c.Database("t_" + hex.EncodeToString(rb))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	opts := &Options{ClockSkew: 20 * time.Millisecond}
	a, err = New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b, err = New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return a, b
}

// TestSlowWriteWatch stops a Publish of node A between its stamp and its
// write for longer than a watch's lookback, while node B's Publishes,
// stamped later, are heard of by a watch on B: the watch must hear of A's
// topic once its write lands (on FerretDB its topic registry entry,
// written behind the insert and stamped with it).
func TestSlowWriteWatch(t *testing.T) {
	ctx := t.Context()
	a, nb := slowPair(t)
	heard := make(chan string, 64)
	w, err := nb.Watch(ctx, func(n persist.Notice) {
		if n.Topic != "" {
			heard <- n.Topic
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(ctx, "slow/#"); err != nil {
		t.Fatal(err)
	}
	wait := func(topic string) bool {
		t.Helper()
		deadline := time.After(3 * time.Second)
		for {
			select {
			case got := <-heard:
				if got == topic {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	stamp, token, err := a.beginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow := &persist.Message{ID: persist.NewID(), Topic: "slow/a", Payload: []byte("slow"), QoS: 1, Time: time.Now()}
	time.Sleep(5 * time.Millisecond)
	fast := &persist.Message{ID: persist.NewID(), Topic: "slow/b", Payload: []byte("fast"), QoS: 1, Time: time.Now()}
	if err := nb.Publish(ctx, fast); err != nil {
		t.Fatal(err)
	}
	if !wait("slow/b") {
		t.Fatal("no notice of B's publish")
	}
	// B publishes again, past the lookback: the watch has read up to then.
	time.Sleep(lookback + 500*time.Millisecond)
	later := &persist.Message{ID: persist.NewID(), Topic: "slow/c", Payload: []byte("later"), QoS: 1, Time: time.Now()}
	if err := nb.Publish(ctx, later); err != nil {
		t.Fatal(err)
	}
	if !wait("slow/c") {
		t.Fatal("no notice of B's second publish")
	}
	if _, err := a.msg.InsertOne(ctx, messageDoc(slow, stamp, a.opt.PayloadFormat)); err != nil {
		t.Fatal(err)
	}
	handed, err := a.register(ctx, []*persist.Message{slow}, stamp, token)
	if err != nil {
		t.Fatal(err)
	}
	if !handed {
		a.endWrite(token)
	}
	if !wait("slow/a") {
		t.Errorf("no notice of A's publish, whose write landed %v after its stamp (B's, stamped later, was heard of before)", time.Since(stamp).Round(time.Millisecond))
	}
}
