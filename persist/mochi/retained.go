package mochi

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// syncRetained makes mochi's retained messages matching filter those of
// the store, keeping mochi's where they are newer (a write in flight).
func (h *Hook) syncRetained(filter string, msgs []*persist.Message) {
	now := time.Now()
	in := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		if m == nil || len(m.Payload) == 0 || m.Expired(now) {
			continue
		}
		in[m.Topic] = true
		cur, ok := h.server.Topics.Retained.Get(m.Topic)
		if ok && (cur.Created > m.Time.Unix() || (cur.Created == m.Time.Unix() && (cur.Expiry != 0 || m.Expiry.IsZero()))) {
			continue
		}
		h.server.Topics.RetainMessage(retainedPacket(m))
	}
	stale := now.Add(-2 * h.opts.Timeout).Unix()
	for _, cur := range h.server.Topics.Messages(filter) {
		if in[cur.TopicName] || strings.HasPrefix(cur.TopicName, "$") || cur.Created > stale {
			continue
		}
		// Deleted in the store (on another node): delete here too.
		h.server.Topics.RetainMessage(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName:   cur.TopicName,
		})
	}
	atomic.StoreInt64(&h.server.Info.Retained, int64(h.server.Topics.Retained.Len()))
}

// retain stores m as the retained message of its topic (an empty payload
// deletes it).
func (h *Hook) retain(ctx context.Context, cl *mqtt.Client, m *persist.Message) {
	r := *m
	r.Retain = true
	if err := h.store.Retain(ctx, &r); err != nil {
		h.fail("Retain", cl.ID, m.Topic, err)
	}
}

// OnRetainMessage stores a retained message mochi kept (one the Hook did
// not tag, such as a will).
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if h.closed.Load() {
		return
	}
	if _, ok := parseTag(pk.Connect.ClientIdentifier); ok {
		return
	}
	m := h.message(cl, &pk, time.Now())
	m.Retain = true
	ctx, cancel := h.call(nil)
	err := h.store.Retain(ctx, m)
	cancel()
	if err != nil {
		h.fail("Retain", cl.ID, pk.TopicName, err)
	}
}

// StoredRetainedMessages returns the store's retained messages (every
// topic matching "#") for mochi to load at start.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	if h.retainLookup == nil {
		return nil, nil
	}
	ctx, cancel := h.call(nil)
	defer cancel()
	msgs, err := h.retainLookup.Retained(ctx, "#")
	if errors.Is(err, persist.ErrUnsupported) {
		return nil, nil // no store keeps retained messages (a Router without such a rule)
	}
	if err != nil {
		h.fail("Retained", "", "#", err)
		return nil, err
	}
	now := time.Now()
	out := make([]storage.Message, 0, len(msgs))
	for _, m := range msgs {
		if m == nil || m.Expired(now) || len(m.Payload) == 0 {
			continue
		}
		pk := retainedPacket(m)
		sm := storage.Message{
			ID:          "mqttpersist_retained_" + m.Topic,
			T:           storage.RetainedKey,
			FixedHeader: pk.FixedHeader,
			TopicName:   m.Topic,
			Payload:     m.Payload,
			Origin:      m.From,
			Created:     pk.Created,
			Properties: storage.MessageProperties{
				PayloadFormat:     pk.Properties.PayloadFormat,
				PayloadFormatFlag: pk.Properties.PayloadFormatFlag,
				ContentType:       pk.Properties.ContentType,
				ResponseTopic:     pk.Properties.ResponseTopic,
				CorrelationData:   pk.Properties.CorrelationData,
				User:              pk.Properties.User,
			},
		}
		if pk.Expiry > 0 {
			// storage.Message has no absolute expiry: give the interval
			// left now (it does not count down in mochi's memory; the
			// next subscription to the topic refreshes it from the store).
			sm.Properties.MessageExpiryInterval = uint32(max(1, pk.Expiry-now.Unix()))
		}
		out = append(out, sm)
	}
	return out, nil
}
