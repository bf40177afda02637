package mongostore_test

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/mqttpersist/mqttpersist/mongostore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

// idAt returns a new message ID of time t, also in the past.
func idAt(t time.Time) string { return ulid.MustNew(ulid.Timestamp(t), crand.Reader).String() }

// ids returns the IDs of msgs.
func ids(msgs []*persist.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func fetchIDs(t *testing.T, st persist.Store, client, filter string) []string {
	t.Helper()
	got, err := st.FetchOffline(t.Context(), client, filter, persist.Fetch{})
	if err != nil {
		t.Fatalf("FetchOffline(%q, %q): %v", client, filter, err)
	}
	return ids(got)
}

func ackAll(t *testing.T, st persist.Store, client string, msgs ...*persist.Message) {
	t.Helper()
	acks := make([]persist.Ack, len(msgs))
	for i, m := range msgs {
		acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
	}
	if err := st.Acked(t.Context(), client, acks...); err != nil {
		t.Fatalf("Acked: %v", err)
	}
}

// TestSettle checks the cursor of a client once messages are settled
// (stamped twice ClockSkew before the fetch, no Publish writing): it
// passes the acked messages up to the first unacked one, the individual
// acks it covers go, and a message with an earlier ID stored after the
// cursor moved (an outbox replay) is still delivered.
func TestSettle(t *testing.T) {
	const skew = 500 * time.Millisecond
	db := freshDB(t)
	st := newStore(t, db, &mongostore.Options{ClockSkew: skew})
	m := make([]*persist.Message, 6)
	for i := range m {
		m[i] = persisttest.NewMessage("settle/t", fmt.Appendf(nil, "#%d", i))
	}
	if err := st.Publish(t.Context(), m...); err != nil {
		t.Fatal(err)
	}
	ackAll(t, st, "c", m[0], m[1], m[3], m[5])
	count := func(coll string) int64 {
		n, err := db.Collection(coll).CountDocuments(t.Context(), bson.D{{Key: "clientid", Value: "c"}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	want := []string{m[2].ID, m[4].ID}
	if got := fetchIDs(t, st, "c", "settle/t"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("before settling: %v, want %v", got, want)
	}
	if n := count("mqtt_acked"); n != 0 {
		t.Errorf("a cursor moved over messages not settled: %d cursors", n)
	}
	time.Sleep(2*skew + 100*time.Millisecond)
	if got := fetchIDs(t, st, "c", "settle/t"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after settling: %v, want %v", got, want)
	}
	if n := count("mqtt_acked_msg"); n != 2 {
		t.Errorf("%d individual acks left, want 2 (of #3 and #5, above the first unacked #2)", n)
	}
	ackAll(t, st, "c", m[2], m[4])
	if got := fetchIDs(t, st, "c", "settle/t"); len(got) != 0 {
		t.Fatalf("after acking everything: %v", got)
	}
	if n := count("mqtt_acked_msg"); n != 0 {
		t.Errorf("%d individual acks left after the cursor passed every message", n)
	}
	// An older message stored now, after the cursor passed newer ones.
	late := persisttest.NewMessage("settle/t", []byte("late"))
	late.ID = idAt(time.Now().Add(-time.Hour))
	if err := st.Publish(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	if got := fetchIDs(t, st, "c", "settle/t"); fmt.Sprint(got) != fmt.Sprint([]string{late.ID}) {
		t.Errorf("a message with an older ID stored after the cursor moved: got %v, want it", got)
	}
	if got := fetchIDs(t, st, "other", "settle/+"); len(got) != 7 {
		t.Errorf("another client gets %d messages, want all 7", len(got))
	}
}

// TestSettleRacing has publishers on two store values publish to one topic
// with IDs stamped by clocks apart while a consumer fetches and acks from
// both, with a ClockSkew so short that the cursor moves all the while
// they race (it waits only for the Publish calls still writing): the
// consumer gets every message, and none twice. (TestSlowWrite makes a
// write overtaken by later ones on purpose.)
func TestSettleRacing(t *testing.T) {
	db := freshDB(t)
	opts := &mongostore.Options{ClockSkew: 20 * time.Millisecond}
	a := newStore(t, db, opts)
	b, err := mongostore.New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []persist.Store{a, b}
	const publishers, each = 4, 40
	var mu sync.Mutex
	published := map[string]bool{}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				m := persisttest.NewMessage("race/t", fmt.Appendf(nil, "p%d #%d", p, i))
				m.ID = idAt(time.Now().Add(-time.Duration(p) * 500 * time.Millisecond)) // node clocks apart
				if err := nodes[p%2].Publish(t.Context(), m); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				published[m.ID] = true
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	got := map[string]int{}
	read := func(i int) int {
		st := nodes[i%2]
		msgs, err := st.FetchOffline(t.Context(), "c", "race/t", persist.Fetch{Limit: 15})
		if err != nil {
			t.Fatalf("FetchOffline: %v", err)
		}
		for _, m := range msgs {
			got[m.ID]++
		}
		rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
		if len(msgs) > 0 {
			ackAll(t, st, "c", msgs...)
		}
		return len(msgs)
	}
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			read(i)
			continue
		}
		break
	}
	time.Sleep(4*opts.ClockSkew + 100*time.Millisecond)
	for i := 0; read(i) > 0 || i < 3; i++ {
		if i > 1000 {
			t.Fatal("the consumer keeps getting messages")
		}
	}
	for id := range published {
		if got[id] != 1 {
			t.Errorf("message %s delivered %d times", id, got[id])
		}
	}
	if len(got) != len(published) {
		t.Errorf("got %d messages, published %d", len(got), len(published))
	}
	n, err := db.Collection("mqtt_acked_msg").CountDocuments(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d individual acks left once every message settled and was acked", n)
	}
}
