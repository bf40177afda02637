package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/redisstore"
)

// TestOpen opens each topology by URL: the store works, owns its client
// (Close closes it) and answers Ping.
func TestOpen(t *testing.T) {
	urls := map[string]func(t *testing.T) string{
		"Single": func(t *testing.T) string { return testenv.RedisURL(t) },
		"Sentinel": func(t *testing.T) string {
			addrs, master := testenv.RedisSentinel(t)
			return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + master + "/0"
		},
		"Cluster": func(t *testing.T) string {
			return "redis+cluster://" + strings.Join(testenv.RedisClusterAddrs(t), ",")
		},
	}
	for _, name := range []string{"Single", "Sentinel", "Cluster"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			u := urls[name](t)
			st, err := redisstore.Open(ctx, u, &redisstore.Options{Prefix: testenv.FreshName("t") + ":mqtt"})
			if err != nil {
				t.Fatalf("Open(%s): %v", u, err)
			}
			t.Cleanup(func() {
				c, _ := newClientLike(t, name)
				_ = dropKeys(context.Background(), c, strings.TrimSuffix(st.Prefix(), ":mqtt")+":*")
			})
			m := &persist.Message{ID: persist.NewID(), Topic: "open/t", Payload: []byte("x"), QoS: 1, Time: time.Now()}
			if err := st.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			if got, err := st.FetchOffline(ctx, "c", "open/+", persist.Fetch{}); err != nil || len(got) != 1 {
				t.Errorf("FetchOffline = %d messages, %v", len(got), err)
			}
			if err := st.Ping(ctx); err != nil {
				t.Errorf("Ping: %v", err)
			}
			client := st.Redis()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := client.Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
				t.Errorf("the client Open made, after Close: %v, want redis.ErrClosed", err)
			}
		})
	}
}

// TestOpenRegistered opens each topology through persist.Open, which
// takes ?prefix=NAME for Options.Prefix in every form.
func TestOpenRegistered(t *testing.T) {
	for _, s := range []string{"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"} {
		if !slices.Contains(persist.Schemes(), s) {
			t.Errorf("persist.Schemes() = %v: no %q", persist.Schemes(), s)
		}
	}
	urls := map[string]func(t *testing.T) string{
		"Single": func(t *testing.T) string { return testenv.RedisURL(t) },
		"Sentinel": func(t *testing.T) string {
			addrs, master := testenv.RedisSentinel(t)
			return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + master + "/0"
		},
		"Cluster": func(t *testing.T) string {
			return "redis+cluster://" + strings.Join(testenv.RedisClusterAddrs(t), ",")
		},
	}
	for _, name := range []string{"Single", "Sentinel", "Cluster"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			base := testenv.FreshName("t")
			u := urls[name](t)
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + "prefix=" + base + ":mqtt"
			st, err := persist.Open(ctx, u)
			if err != nil {
				t.Fatalf("persist.Open(%s): %v", u, err)
			}
			t.Cleanup(func() {
				c, _ := newClientLike(t, name)
				_ = dropKeys(context.Background(), c, base+":*")
			})
			rs, ok := st.(*redisstore.Store)
			if !ok {
				t.Fatalf("persist.Open(%s) = %T, want *redisstore.Store", u, st)
			}
			defer rs.Close()
			if rs.Prefix() != base+":mqtt" {
				t.Errorf("Prefix() = %q, want %q from the URL", rs.Prefix(), base+":mqtt")
			}
			if _, ok := st.(persist.Migrator); ok {
				t.Errorf("a Redis store is a persist.Migrator; it has no schema to create")
			}
			m := &persist.Message{ID: persist.NewID(), Topic: "open/t", Payload: []byte("x"), QoS: 1, Time: time.Now()}
			if err := st.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
			if n, err := rs.Redis().Exists(ctx, base+":mqtt:msg:"+m.ID).Result(); err != nil || n != 1 {
				t.Errorf("key %s:mqtt:msg:%s: exists %d, %v", base, m.ID, n, err)
			}
		})
	}
}

// TestOpenRegisteredErrors: through persist.Open, redisstore's errors keep
// their kind and retryability and show no password.
func TestOpenRegisteredErrors(t *testing.T) {
	for _, c := range []struct {
		url  string
		kind error
		says string
	}{
		{"redis://u:s3cret@127.0.0.1:16379/0?prefix=a&prefix=%zz", persist.ErrInvalid, "bad query"},
		{"redis+cluster://u:s3cret@127.0.0.1:17001?prefix=a&pool_size=3", persist.ErrInvalid, "no query parameters"},
		{"redis://u:s3cret@127.0.0.1:notaport/0?prefix=a", persist.ErrInvalid, "port"},
		{"redis://u:s3cret@127.0.0.1:1/0?prefix=a", persist.ErrUnavailable, "Open redis://u:xxxxx@127.0.0.1:1/0?prefix=a: "},
		{"rediss+sentinel://u:s3cret@127.0.0.1:1/mymaster?prefix=a", persist.ErrUnavailable, "127.0.0.1:1"},
	} {
		st, err := persist.Open(t.Context(), c.url)
		if err == nil {
			st.(persist.Closer).Close()
			t.Errorf("persist.Open(%s) succeeded", c.url)
			continue
		}
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("persist.Open(%s): %v; want an error matching %v that says %q", c.url, err, c.kind, c.says)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("persist.Open(%s): the error shows the password: %v", c.url, err)
		}
		if want := c.kind == persist.ErrUnavailable; persist.IsRetryable(err) != want {
			t.Errorf("persist.Open(%s): retryable %v, want %v: %v", c.url, persist.IsRetryable(err), want, err)
		}
	}
}

func newClientLike(t *testing.T, name string) (redis.UniversalClient, error) {
	switch name {
	case "Sentinel":
		return sentinelClient(t), nil
	case "Cluster":
		return clusterClient(t), nil
	}
	return singleClient(t), nil
}

// TestNewLeavesClientOpen: a store from New never closes the caller's
// client.
func TestNewLeavesClientOpen(t *testing.T) {
	c := singleClient(t)
	st := newStore(t, c, nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Errorf("the caller's client after Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		url  string
		kind error
		says string
	}{
		{"http://u:s3cret@127.0.0.1:16379", persist.ErrInvalid, `unknown scheme "http"`},
		{"127.0.0.1:16379", persist.ErrInvalid, "not a URL"},
		{"redis://u:s3cret@127.0.0.1:notaport/0", persist.ErrInvalid, "port"},
		{"redis://u:s3cret@127.0.0.1:16379/x", persist.ErrInvalid, "database"},
		{"redis+sentinel://u:s3cret@127.0.0.1:16389", persist.ErrInvalid, "no master name"},
		{"redis+sentinel://u:s3cret@127.0.0.1:16389/m/x", persist.ErrInvalid, `bad database number "x"`},
		{"redis+sentinel://u:s3cret@127.0.0.1:16389/m/0/1", persist.ErrInvalid, "want /mastername or /mastername/db"},
		{"redis+cluster://u:s3cret@127.0.0.1:17001/0", persist.ErrInvalid, "a cluster URL has no path"},
		{"redis+cluster://u:s3cret@127.0.0.1:17001,,127.0.0.1:17002", persist.ErrInvalid, "empty address"},
		{"redis+cluster://u:s3cret@127.0.0.1:17001?pool_size=3", persist.ErrInvalid, "no query parameters"},
		{"redis+cluster://u:s3cret@nohostport", persist.ErrInvalid, `address "nohostport"`},
		// Nothing listens on port 1.
		{"redis://u:s3cret@127.0.0.1:1/0", persist.ErrUnavailable, "127.0.0.1:1"},
		{"redis+cluster://u:s3cret@127.0.0.1:1", persist.ErrUnavailable, "127.0.0.1:1"},
		{"redis+sentinel://u:s3cret@127.0.0.1:1/mymaster", persist.ErrUnavailable, "127.0.0.1:1"},
	} {
		st, err := redisstore.Open(ctx, c.url, nil)
		if err == nil {
			st.Close()
			t.Errorf("Open(%s) succeeded", c.url)
			continue
		}
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Open(%s): %v; want an error matching %v that says %q", c.url, err, c.kind, c.says)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s): the error shows the password: %v", c.url, err)
		}
		if want := c.kind == persist.ErrUnavailable; persist.IsRetryable(err) != want {
			t.Errorf("Open(%s): retryable %v, want %v: %v", c.url, persist.IsRetryable(err), want, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := redisstore.Open(cctx, "redis://127.0.0.1:1/0", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
}

func TestNewOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := redisstore.New(nil, nil); !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("New(nil): %v", err)
	}
	for _, o := range []redisstore.Options{{ExpiredAfter: time.Microsecond}, {FetchChunk: -1}} {
		if _, err := redisstore.New(c, &o); !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("New(%+v): %v, want ErrInvalid", o, err)
		}
	}
	st, err := redisstore.New(c, nil)
	if err != nil || st.Prefix() != "mqtt" {
		t.Errorf("New(nil options): prefix %q, %v", st.Prefix(), err)
	}
}
