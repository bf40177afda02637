package persisttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// testCancelled calls every verb with a context that is already cancelled:
// each returns an error matching context.Canceled and changes nothing.
func (s *suite) testCancelled(t *testing.T) {
	st := s.store(t)
	mode := s.anyMode(t)
	m0 := NewMessage("cc/t", []byte("stored before"))
	m0.Mode = mode
	if s.has(persist.OnPublish) {
		publish(t, st, m0)
	}
	var q0 *persist.Message
	if !s.h.Features.NoQueue && s.has(persist.OnPublish|persist.OnFetch) {
		q0 = NewMessage("cc/q", []byte("queued before"))
		q0.Mode = persist.Queue
		publish(t, st, q0)
	}
	opt := persist.Fetch{Mode: mode}
	canceled := func(t *testing.T, what string, err error) {
		t.Helper()
		wantErr(t, what+" with a cancelled context", err, context.Canceled)
	}

	t.Run("Connected", func(t *testing.T) {
		s.need(t, persist.OnConnected)
		canceled(t, "Connected", st.Connected(cancelled(t), &persist.Client{ID: "cc-client", Node: "n", Online: true, OnlineAt: time.Now()}))
		cl := s.clientLookup(t, st)
		if c, err := cl.Client(t.Context(), "cc-client"); !errors.Is(err, persist.ErrNotFound) {
			t.Errorf("Client after a cancelled Connected = %+v, %v; want ErrNotFound", c, err)
		}
		_, err := cl.Client(cancelled(t), "cc-client")
		canceled(t, "Client", err)
	})
	t.Run("Subscribed", func(t *testing.T) {
		s.need(t, persist.OnSubscribed)
		canceled(t, "Subscribed", st.Subscribed(cancelled(t), "cc-sub", []persist.Subscription{{Filter: "cc/t", QoS: 1}}, nil))
		if mode == persist.Fanout && s.has(persist.OnPublish|persist.OnFetch) {
			// Had the subscription been stored, it would start after m0.
			sameIDs(t, "fetch after a cancelled Subscribed", fetch(t, st, "cc-sub", "cc/t", opt), msgs(m0))
		}
		sl := s.subLookup(t, st)
		checkSubs(t, "after a cancelled Subscribed", sl, "cc-sub", nil)
		_, err := sl.Subscriptions(cancelled(t), "cc-sub")
		canceled(t, "Subscriptions", err)
	})
	t.Run("Publish", func(t *testing.T) {
		s.need(t, persist.OnPublish)
		m := NewMessage("cc/t", []byte("never stored"))
		m.Mode = mode
		canceled(t, "Publish", st.Publish(cancelled(t), m))
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		m2 := NewMessage("cc/t", []byte("never stored either"))
		m2.Mode = mode
		wantErr(t, "Publish with an expired deadline", st.Publish(ctx, m2), context.DeadlineExceeded)
		sameIDs(t, "after a cancelled Publish", s.read(t, st, "cc-reader", "cc/t", mode), msgs(m0))
	})
	t.Run("Acked", func(t *testing.T) {
		s.needFanout(t)
		s.need(t, persist.OnPublish|persist.OnFetch|persist.OnAcked)
		canceled(t, "Acked", st.Acked(cancelled(t), "cc-acker", persist.Ack{ID: m0.ID, Topic: m0.Topic}))
		sameIDs(t, "after a cancelled Acked", fetch(t, st, "cc-acker", "cc/t", fan), msgs(m0))
	})
	t.Run("FetchOffline", func(t *testing.T) {
		s.need(t, persist.OnFetch)
		got, err := st.FetchOffline(cancelled(t), "cc-reader", "cc/t", opt)
		canceled(t, "FetchOffline", err)
		if len(got) != 0 {
			t.Errorf("FetchOffline with a cancelled context returned %d messages", len(got))
		}
	})
	t.Run("FetchOfflineQueue", func(t *testing.T) {
		s.needQueue(t)
		s.need(t, persist.OnPublish|persist.OnFetch)
		_, err := st.FetchOffline(cancelled(t), "cc-q1", "cc/q", que)
		canceled(t, "FetchOffline(Queue)", err)
		sameIDs(t, "a queue fetch after a cancelled one (nothing was claimed)", fetch(t, st, "cc-q2", "cc/q", que), msgs(q0))
	})
	t.Run("Retain", func(t *testing.T) {
		s.need(t, persist.OnRetain)
		canceled(t, "Retain", st.Retain(cancelled(t), newRetained("cc/r", []byte("never"))))
		rl := s.retainLookup(t, st)
		sameIDs(t, "after a cancelled Retain", retained(t, rl, "#"), nil)
		_, err := rl.Retained(cancelled(t), "#")
		canceled(t, "Retained", err)
	})
	t.Run("Ping", func(t *testing.T) {
		p, ok := st.(persist.Pinger)
		if !ok {
			t.Skip("store does not implement persist.Pinger")
		}
		canceled(t, "Ping", p.Ping(cancelled(t)))
	})
}

// testClosed uses a store after Close: every method returns an error
// matching persist.ErrClosed, and closing again is fine.
func (s *suite) testClosed(t *testing.T) {
	st := s.store(t)
	c, ok := st.(persist.Closer)
	if !ok {
		t.Skip("store does not implement persist.Closer")
	}
	mode := s.anyMode(t)
	m := NewMessage("closed/t", []byte("x"))
	m.Mode = mode
	if s.has(persist.OnPublish) {
		publish(t, st, m)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	closed := func(what string, err error) {
		t.Helper()
		wantErr(t, what+" after Close", err, persist.ErrClosed)
	}
	// The verbs the store handles; the others say ErrUnsupported (see
	// testUnsupported).
	if s.has(persist.OnConnected) {
		closed("Connected", st.Connected(ctx, &persist.Client{ID: "c", Node: "n", Online: true, OnlineAt: time.Now()}))
	}
	if s.has(persist.OnSubscribed) {
		closed("Subscribed", st.Subscribed(ctx, "c", []persist.Subscription{{Filter: "a", QoS: 1}}, nil))
	}
	if s.has(persist.OnPublish) {
		m2 := NewMessage("closed/t", []byte("y"))
		m2.Mode = mode
		closed("Publish", st.Publish(ctx, m2))
		if s.writeOnly() {
			sameIDs(t, "read back after a Publish after Close", s.read(t, st, "c", "closed/t", mode), msgs(m))
		}
	}
	if s.has(persist.OnAcked) {
		closed("Acked", st.Acked(ctx, "c", persist.Ack{ID: m.ID, Topic: m.Topic}))
	}
	if s.has(persist.OnRetain) {
		closed("Retain", st.Retain(ctx, newRetained("closed/r", []byte("r"))))
	}
	if s.has(persist.OnFetch) {
		_, err := st.FetchOffline(ctx, "c", "closed/t", persist.Fetch{Mode: mode})
		closed("FetchOffline", err)
	}
	if cl, ok := st.(persist.ClientLookup); ok {
		_, err := cl.Client(ctx, "c")
		closed("Client", err)
	}
	if sl, ok := st.(persist.SubscriptionLookup); ok {
		_, err := sl.Subscriptions(ctx, "c")
		closed("Subscriptions", err)
	}
	if rl, ok := st.(persist.RetainLookup); ok {
		_, err := rl.Retained(ctx, "#")
		closed("Retained", err)
	}
	if p, ok := st.(persist.Pinger); ok {
		closed("Ping", p.Ping(ctx))
	}
	if err := c.Close(); err != nil && !errors.Is(err, persist.ErrClosed) {
		t.Errorf("second Close: %v, want nil or an error matching ErrClosed", err)
	}
}
