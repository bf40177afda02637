package sqlstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// TestClaimAcrossStores has consumers on two stores with their own
// connection pools (as two broker nodes, or two processes on one SQLite
// file) claim one queue: every message is handed out exactly once.
func TestClaimAcrossStores(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		a := db.open(t, nil)
		b := db.open(t, nil)
		ctx := withTimeout(t)
		const n = 300
		var all []*persist.Message
		for i := range n {
			all = append(all, &persist.Message{ID: persist.NewID(), Topic: fmt.Sprintf("jobs/%d/run", i%4), Payload: []byte{byte(i)},
				QoS: 1, Mode: persist.Queue, Time: time.Now()})
		}
		if err := a.Publish(ctx, all...); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		got := map[string][]string{}
		var wg sync.WaitGroup
		for i := range 6 {
			st := []*sqlstore.Store{a, b}[i%2]
			wg.Go(func() {
				id := fmt.Sprintf("worker-%d", i)
				filter := []string{"jobs/+/run", "jobs/#", "jobs/1/run"}[i%3]
				for {
					batch, err := st.FetchOffline(ctx, id, filter, persist.Fetch{Mode: persist.Queue, Limit: 7})
					if err != nil {
						t.Errorf("%s: %v", id, err)
						return
					}
					if len(batch) == 0 {
						return
					}
					if len(batch) > 7 {
						t.Errorf("%s: %d messages with Limit 7", id, len(batch))
					}
					acks := make([]persist.Ack, len(batch))
					mu.Lock()
					for j, m := range batch {
						got[m.ID] = append(got[m.ID], id)
						acks[j] = persist.Ack{ID: m.ID, Topic: m.Topic}
					}
					mu.Unlock()
					if err := st.Acked(ctx, id, acks...); err != nil {
						t.Errorf("%s: Acked: %v", id, err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, m := range all {
			if by := got[m.ID]; len(by) != 1 {
				t.Errorf("message %s (%s) handed to %v", m.ID, m.Topic, by)
			}
		}
		if rest, err := a.FetchOffline(ctx, "late", "#", persist.Fetch{Mode: persist.Queue}); err != nil || len(rest) != 0 {
			t.Errorf("after all acks: %d messages left, %v", len(rest), err)
		}
	})
}
