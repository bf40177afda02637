package persisttest

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

func (s *suite) testPublish(t *testing.T) {
	t.Run("Idempotent", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			m1 := NewMessage("idem/t", []byte("one"))
			m2 := NewMessage("idem/t", []byte("two"))
			withMode(mode, m1, m2)
			publish(t, st, m1)
			publish(t, st, m1.Clone())
			publish(t, st, m2, m2.Clone(), m1.Clone())
			sameIDs(t, "after publishing the same IDs again, also within one batch", s.read(t, st, "c", "idem/t", mode), msgs(m1, m2))
		})
	})
	t.Run("Batch500", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			var all []*persist.Message
			for i := range 500 {
				m := NewMessage(fmt.Sprintf("batch/%d", i%5), fmt.Appendf(nil, "message %d", i))
				m.Mode = mode
				m.From = fmt.Sprintf("publisher-%d", i%7)
				all = append(all, m)
			}
			publish(t, st, all...)
			got := s.read(t, st, "c", "batch/+", mode)
			if sameIDs(t, "500 messages published in one batch", got, all) {
				for i := range got {
					checkMessage(t, fmt.Sprintf("batch message %d", i), got[i], all[i], s.ignored(true))
				}
			}
		})
	})
	t.Run("LargeBatch", func(t *testing.T) {
		// 20 of the largest payloads in one call: more than one
		// statement or packet holds in many databases (MariaDB's
		// max_allowed_packet is 16 MiB by default).
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			size := s.maxPayload(st)
			var all []*persist.Message
			for i := range 20 {
				p := randomBytes(size)
				p[0] = byte(i)
				m := NewMessage("large/t", p)
				m.Mode = mode
				all = append(all, m)
			}
			publish(t, st, all...)
			got := s.read(t, st, "c", "large/t", mode)
			if sameIDs(t, fmt.Sprintf("20 messages of %d bytes in one batch", size), got, all) {
				for i := range got {
					checkMessage(t, fmt.Sprintf("large message %d", i), got[i], all[i], s.ignored(true))
				}
			}
		})
	})
	t.Run("ExpiredNotStored", func(t *testing.T) {
		s.eachMode(t, func(t *testing.T, mode persist.Mode) {
			st := s.store(t)
			now := time.Now()
			ok1 := NewMessage("expired/t", []byte("ok1"))
			gone := newMessageAt("expired/t", []byte("expired"), now.Add(-2*time.Hour))
			gone.Expiry = now.Add(-time.Hour)
			justGone := NewMessage("expired/t", []byte("just expired"))
			justGone.Expiry = now.Add(-2 * time.Second)
			ok2 := NewMessage("expired/t", []byte("ok2"))
			ok2.Expiry = now.Add(time.Hour)
			withMode(mode, ok1, gone, justGone, ok2)
			publish(t, st, ok1, gone, justGone, ok2)
			sameIDs(t, "messages expired when published", s.read(t, st, "c", "expired/t", mode), msgs(ok1, ok2))
		})
	})
	t.Run("EmptyBatch", func(t *testing.T) {
		t.Parallel()
		st := s.store(t)
		if err := st.Publish(t.Context()); err != nil {
			t.Errorf("Publish with no messages: %v", err)
		}
		if !s.has(persist.OnAcked) {
			return
		}
		if err := st.Acked(t.Context(), "c"); err != nil {
			t.Errorf("Acked with no acks: %v", err)
		}
	})
}
