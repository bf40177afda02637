package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// TestInvalidInput: the inputs issue 8 found redisstore accepting (and a
// few more of the kind) give an error matching persist.ErrInvalid that
// names the package once, and write nothing.
func TestInvalidInput(t *testing.T) {
	eachTopology(t, func(t *testing.T, c redis.UniversalClient) {
		t.Parallel()
		ctx := t.Context()
		st := newStore(t, c, nil)
		id := persist.NewID()
		for _, k := range []struct {
			name string
			call func(context.Context) error
		}{
			{"FetchOffline Since -1s", func(ctx context.Context) error {
				_, err := st.FetchOffline(ctx, "c", "a/#", persist.Fetch{Since: -time.Second})
				return err
			}},
			{"FetchOffline Lease -1s", func(ctx context.Context) error {
				_, err := st.FetchOffline(ctx, "c", "a/#", persist.Fetch{Mode: persist.Queue, Lease: -time.Second})
				return err
			}},
			{"FetchOffline empty client ID", func(ctx context.Context) error {
				_, err := st.FetchOffline(ctx, "", "a/#", persist.Fetch{})
				return err
			}},
			{"Subscribed removed a/#/b", func(ctx context.Context) error {
				return st.Subscribed(ctx, "c", nil, []string{"a/#/b"})
			}},
			{"Acked topic a/+", func(ctx context.Context) error {
				return st.Acked(ctx, "c", persist.Ack{ID: id, Topic: "a/+"})
			}},
			{"Acked client ID not UTF-8", func(ctx context.Context) error {
				return st.Acked(ctx, "c\xff", persist.Ack{ID: id, Topic: "a"})
			}},
			{"Connected client ID with NUL", func(ctx context.Context) error {
				return st.Connected(ctx, &persist.Client{ID: "c\x00d", Online: true})
			}},
			{"Connected client ID not UTF-8", func(ctx context.Context) error {
				return st.Connected(ctx, &persist.Client{ID: "c\xffd", Online: true})
			}},
			{"Client empty ID", func(ctx context.Context) error {
				_, err := st.Client(ctx, "")
				return err
			}},
			{"Subscriptions empty ID", func(ctx context.Context) error {
				_, err := st.Subscriptions(ctx, "")
				return err
			}},
			{"Publish From with NUL", func(ctx context.Context) error {
				return st.Publish(ctx, &persist.Message{ID: persist.NewID(), Topic: "a", From: "x\x00"})
			}},
			{"Retain Node not UTF-8", func(ctx context.Context) error {
				return st.Retain(ctx, &persist.Message{Topic: "a", Payload: []byte("x"), Node: "\xff"})
			}},
		} {
			err := k.call(ctx)
			if !errors.Is(err, persist.ErrInvalid) {
				t.Errorf("%s: %v, want an error matching ErrInvalid", k.name, err)
				continue
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "redisstore: ") || strings.Count(msg, "redisstore") != 1 {
				t.Errorf("%s: error %q does not name redisstore once, first", k.name, msg)
			}
		}
		if n := countKeys(t, c, st.Prefix()+":*"); n != 0 {
			t.Errorf("%d keys under %s:* after invalid input only, want 0", n, st.Prefix())
		}
	})
}
