package redisstore_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// ownClient returns a new client of the same topology as c (its own
// connections, as another broker node has), closed when the test ends.
func ownClient(t testing.TB, c redis.UniversalClient) redis.UniversalClient {
	t.Helper()
	var n redis.UniversalClient
	switch x := c.(type) {
	case *redis.ClusterClient:
		n = redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t), PoolSize: 8})
	case *redis.Client:
		if x.Options().Addr == "FailoverClient" {
			addrs, master := testenv.RedisSentinel(t)
			n = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: addrs, PoolSize: 8})
		} else {
			o, err := redis.ParseURL(testenv.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			o.DB = x.Options().DB
			o.PoolSize = 8
			n = redis.NewClient(o)
		}
	default:
		t.Fatalf("ownClient: a client of type %T", c)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// sharedStore returns a second store on st's prefix (another broker node
// sharing the database) with a client of its own of c's topology.
func sharedStore(t testing.TB, c redis.UniversalClient, st *redisstore.Store, opts *redisstore.Options) *redisstore.Store {
	t.Helper()
	var o redisstore.Options
	if opts != nil {
		o = *opts
	}
	o.Prefix = st.Prefix()
	other, err := redisstore.New(ownClient(t, c), &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}
