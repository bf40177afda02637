package redisstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// topologies are the ways of reaching Redis: a single server, Sentinel or
// a Cluster, each from `make services`; a topology's Open returns its
// client.
var topologies = []testenv.Backend[redis.UniversalClient]{
	{Name: "Single", Open: singleClient},
	{Name: "Sentinel", Open: sentinelClient},
	{Name: "Cluster", Open: clusterClient},
}

var (
	clientsMu sync.Mutex
	clients   = map[string]redis.UniversalClient{}
)

// shared returns the client of a topology, made once per test binary (and
// never closed: the process ends).
func shared(t testing.TB, name string, mk func() redis.UniversalClient) redis.UniversalClient {
	t.Helper()
	clientsMu.Lock()
	defer clientsMu.Unlock()
	c, ok := clients[name]
	if !ok {
		c = mk()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("%s: PING: %v", name, err)
		}
		clients[name] = c
	}
	return c
}

func singleClient(t testing.TB) redis.UniversalClient {
	u := testenv.RedisURL(t)
	return shared(t, "single", func() redis.UniversalClient {
		o, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("%s: %v", testenv.RedisEnv, err)
		}
		o.PoolSize = 32
		return redis.NewClient(o)
	})
}

func sentinelClient(t testing.TB) redis.UniversalClient {
	addrs, master := testenv.RedisSentinel(t)
	return shared(t, "sentinel", func() redis.UniversalClient {
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: addrs, PoolSize: 32})
	})
}

func clusterClient(t testing.TB) redis.UniversalClient {
	addrs := testenv.RedisClusterAddrs(t)
	return shared(t, "cluster", func() redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: 32})
	})
}

// newStore returns a store on c with a fresh prefix (t<16 hex>:mqtt) whose
// keys are deleted when the test ends.
func newStore(t testing.TB, c redis.UniversalClient, opts *redisstore.Options) *redisstore.Store {
	t.Helper()
	var o redisstore.Options
	if opts != nil {
		o = *opts
	}
	base := testenv.FreshName("t")
	o.Prefix = base + ":mqtt"
	st, err := redisstore.New(c, &o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		st.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropKeys(ctx, c, base+":*"); err != nil {
			t.Errorf("deleting keys %s:*: %v", base, err)
		}
	})
	return st
}

// dropKeys deletes the keys matching pattern on every master.
func dropKeys(ctx context.Context, c redis.UniversalClient, pattern string) error {
	each := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			p := c.Pipeline()
			for _, k := range batch {
				p.Unlink(ctx, k) // one key per command: a Cluster node's keys span slots
			}
			batch = batch[:0]
			_, err := p.Exec(ctx)
			return err
		}
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) >= 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	switch x := c.(type) {
	case *redis.ClusterClient:
		return x.ForEachMaster(ctx, each)
	case *redis.Client:
		return each(ctx, x)
	}
	return nil
}

// countKeys counts the keys matching pattern on every master.
func countKeys(t testing.TB, c redis.UniversalClient, pattern string) int {
	t.Helper()
	var mu sync.Mutex
	n := 0
	each := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			n++
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch x := c.(type) {
	case *redis.ClusterClient:
		err = x.ForEachMaster(t.Context(), each)
	case *redis.Client:
		err = each(t.Context(), x)
	}
	if err != nil {
		t.Fatalf("SCAN %s: %v", pattern, err)
	}
	return n
}

// harness makes stores of fresh prefixes on c; Shared makes a second
// store on the same prefix with a client of its own (another broker node).
func harness(c redis.UniversalClient) persisttest.Harness {
	return persisttest.Harness{
		New: func(t testing.TB) persist.Store {
			return newStore(t, c, nil)
		},
		Shared: func(t testing.TB, st persist.Store) persist.Store {
			return sharedStore(t, c, st.(*redisstore.Store), nil)
		},
	}
}

// eachTopology runs fn in a subtest per topology, with its client.
func eachTopology(t *testing.T, fn func(t *testing.T, c redis.UniversalClient)) {
	testenv.EachBackend(t, topologies, fn)
}

func TestConformance(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		persisttest.Run(t, harness(c))
	})
}

// quiet drops go-redis's own log lines (Sentinel master switches and the
// like); the store itself never logs.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quiet{}) }

// info returns the fields of INFO section of the server c sends commands
// to.
func info(ctx context.Context, c redis.UniversalClient, section string) (map[string]string, error) {
	text, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, l := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}
