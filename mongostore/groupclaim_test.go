package mongostore_test

import (
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/mqttpersist/mqttpersist/mongostore"
	"github.com/mqttpersist/mqttpersist/persist"
)

// TestGroupClaimCleanup checks that group claims do not pile up: a
// member's renewals leave the settled generations behind them deleted,
// and DeleteExpired's sweep removes claims whose lease ran out long ago in
// two steps (a tombstone, which no Claim takes, then nothing), after which
// the IDs are claimed anew.
func TestGroupClaimCleanup(t *testing.T) {
	db := freshDB(t)
	// WriteTimeout and ClockSkew make how long a generation takes to
	// settle: about 1 s here (a WriteTimeout of 100 ms was too short for
	// FerretDB's writes when CI's other packages share the cores).
	opts := &mongostore.Options{WriteTimeout: 500 * time.Millisecond, ClockSkew: time.Millisecond}
	st := newStore(t, db, opts)
	coll := db.Collection(mongostore.DefaultGroupClaimCollection)
	count := func(t *testing.T) int64 {
		t.Helper()
		n, err := coll.CountDocuments(t.Context(), bson.D{})
		if err != nil {
			t.Fatalf("CountDocuments: %v", err)
		}
		return n
	}
	claim := func(t *testing.T, owner string, ids ...string) []string {
		t.Helper()
		got, err := st.Claim(t.Context(), "$share/g/t", owner, time.Minute, ids...)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return got
	}
	ids := []string{persist.NewID(), persist.NewID(), persist.NewID()}
	for range 4 {
		if got := claim(t, "m1", ids...); len(got) != len(ids) {
			t.Fatalf("m1 renewing: got %q, want %q", got, ids)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	if n := count(t); n > 2*int64(len(ids)) {
		t.Errorf("after 4 renewals: %d claim documents, want at most 2 per ID", n)
	}
	sweep := func(t *testing.T, at time.Time) {
		t.Helper()
		if _, err := mongostore.SweepGroupClaims(st, t.Context(), at); err != nil {
			t.Fatalf("sweep: %v", err)
		}
	}
	sweep(t, time.Now().Add(5*time.Minute))
	if got := claim(t, "m2", ids...); len(got) != 0 {
		t.Fatalf("m2 while m1's leases run, after a sweep: got %q, want none", got)
	}
	later := time.Now().Add(time.Minute + 11*time.Minute)
	sweep(t, later)
	if n := count(t); n != int64(len(ids)) {
		t.Errorf("after the sweep past the grace: %d claim documents, want the %d tombstones", n, len(ids))
	}
	if got := claim(t, "m2", ids...); len(got) != 0 {
		t.Errorf("m2 while the tombstones stand: got %q, want none", got)
	}
	sweep(t, later.Add(3*time.Second)) // past the tombstones' settling
	if n := count(t); n != 0 {
		t.Errorf("after the tombstones settled: %d claim documents, want none", n)
	}
	if got := claim(t, "m2", ids...); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("m2 after the sweep: got %q, want %q", got, ids)
	}
}
