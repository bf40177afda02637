package redisstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
)

// TestSentinelFailover has the Sentinel promote the replica while a store
// on a failover client is in use: every error meanwhile is retryable, the
// store works on the new master afterwards, and the messages written before
// the failover (and replicated) are all there.
func TestSentinelFailover(t *testing.T) {
	addrs, master := testenv.RedisSentinel(t)
	c := sentinelClient(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	st := newStore(t, c, nil)
	var before []*persist.Message
	for i := range 50 {
		before = append(before, msg(fmt.Sprintf("fo/%d", i%5), persist.Fanout))
	}
	if err := st.Publish(ctx, before...); err != nil {
		t.Fatal(err)
	}
	// Wait until the replica has them.
	if n, err := c.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 10000 = %d, %v: no replica has the writes", n, err)
	}
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: addrs[0]})
	defer sentinel.Close()
	old, err := sentinel.GetMasterAddrByName(ctx, master).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := sentinel.Failover(ctx, master).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER %s: %v", master, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	var after []*persist.Message
	for {
		now, err := sentinel.GetMasterAddrByName(ctx, master).Result()
		// Switched once the store's client writes to the new master: a
		// write the old one took while the Sentinel already named the new
		// one is lost when the old one becomes its replica (Redis
		// replicates asynchronously; the test's "before" messages were
		// WAITed for).
		server, _ := info(ctx, c, "server") // nil while the client fails over
		switched := err == nil && now[1] != old[1] && server["tcp_port"] == now[1]
		m := msg("fo/after", persist.Fanout)
		err = st.Publish(ctx, m)
		if err == nil {
			after = append(after, m)
			if switched {
				break
			}
		} else if !persist.IsRetryable(err) {
			t.Fatalf("Publish during the failover: %v (not retryable)", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover from %v within 60s (last error %v)", old, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := st.FetchOffline(ctx, "reader", "fo/#", persist.Fetch{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, m := range got {
		have[m.ID] = true
	}
	for _, m := range before {
		if !have[m.ID] {
			t.Errorf("message %s written before the failover is gone", m.ID)
		}
	}
	if !have[after[len(after)-1].ID] {
		t.Errorf("the message written on the new master is missing")
	}
	t.Logf("failover from %s to the replica; %d publishes during it succeeded", old[1], len(after))
}
