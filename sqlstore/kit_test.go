package sqlstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// TestLimits checks that the store declares the limits its columns keep,
// so that a Router checks input against them.
func TestLimits(t *testing.T) {
	st, err := sqlstore.Open(t.Context(), "sqlite::memory:", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := persist.Limits{ClientID: sqlstore.MaxClientIDLen, Topic: sqlstore.MaxTopicLen,
		Text: sqlstore.MaxStringLen, ID: sqlstore.MaxIDLen}
	if got := persist.LimitsOf(st); got != want {
		t.Errorf("LimitsOf = %+v, want %+v", got, want)
	}
}

// TestErrorStyle checks that errors read "<store>: <Op> <what>: <cause>",
// naming the store once.
func TestErrorStyle(t *testing.T) {
	ctx := withTimeout(t)
	st, err := sqlstore.Open(ctx, "sqlite::memory:", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err, kind error, prefix string) {
		t.Helper()
		if !errors.Is(err, kind) {
			t.Errorf("%s: %v, want an error matching %v", what, err, kind)
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, prefix) || strings.Count(msg, "sqlstore") != 1 {
			t.Errorf("%s: error %q does not start with %q, naming the store once", what, msg, prefix)
		}
	}
	_, err = st.FetchOffline(ctx, "c", "a/#", persist.Fetch{Since: -time.Second})
	check("FetchOffline with Since -1s", err, persist.ErrInvalid, `sqlstore(sqlite): FetchOffline client "c" filter "a/#": `)
	err = st.Publish(ctx, &persist.Message{ID: persist.NewID(), Topic: "ok"}, &persist.Message{ID: persist.NewID(), Topic: "a/+"})
	check("Publish to a filter", err, persist.ErrInvalid, `sqlstore(sqlite): Publish message 1 (topic "a/+"): `)
	err = st.Subscribed(ctx, "c", nil, []string{"a/#/b"})
	check("Subscribed removing a bad filter", err, persist.ErrInvalid, `sqlstore(sqlite): Subscribed client "c" removed filter 0 ("a/#/b"): `)
	_, err = st.Client(ctx, "nobody")
	check("Client of an unknown client", err, persist.ErrNotFound, `sqlstore(sqlite): Client client "nobody": `)
	_, err = st.Client(ctx, "")
	check("Client with an empty ID", err, persist.ErrInvalid, `sqlstore(sqlite): Client: `)

	st.Close()
	check("Ping after Close", st.Ping(ctx), persist.ErrClosed, `sqlstore(sqlite): Ping: `)
	_, err = st.Retained(ctx, "#")
	check("Retained after Close", err, persist.ErrClosed, `sqlstore(sqlite): Retained: `)
}
