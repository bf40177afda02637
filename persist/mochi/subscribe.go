package mochi

import (
	"errors"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// OnSubscribe refreshes the broker's retained messages for each filter
// from the store before mochi sends them to the subscriber, so retained
// messages set or deleted on other nodes (or before a restart) are seen.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if c := h.connFor(cl); c != nil && !cl.Net.Inline {
		// mochi adds the subscriptions to the session before OnSubscribed
		// stores them: until then the delivery must not fetch for them (a
		// fetch for a filter with no stored subscription has no start and
		// would replay the topic's whole history to a new subscriber).
		c.storing(pk.Filters, true)
	}
	if h.opts.NoRetainSync || h.retainLookup == nil || h.closed.Load() ||
		h.server.Options.Capabilities.RetainAvailable == 0 {
		return pk
	}
	for _, sub := range pk.Filters {
		if sub.RetainHandling == 2 || isShared(normFilter(sub.Filter)) || !mqtt.IsValidFilter(sub.Filter, false) {
			continue
		}
		ctx, cancel := h.call(nil)
		msgs, err := h.retainLookup.Retained(ctx, sub.Filter)
		cancel()
		if errors.Is(err, persist.ErrUnsupported) {
			return pk // no store keeps retained messages
		}
		if err != nil {
			h.fail("Retained", cl.ID, sub.Filter, err)
			continue
		}
		h.syncRetained(sub.Filter, msgs)
	}
	return pk
}

// OnSubscribed stores the subscriptions mochi granted and has the client's
// delivery fetch what the store holds for them (queued messages, and for
// fanout what was published since the subscription was stored).
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Inline || h.closed.Load() {
		return
	}
	maxQoS := h.server.Options.Capabilities.MaximumQos
	var subs []persist.Subscription
	for i, s := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < packets.ErrUnspecifiedError.Code {
			subs = append(subs, subscription(s, maxQoS))
		}
	}
	c := h.connFor(cl)
	if c != nil {
		defer c.storing(pk.Filters, false) // and kick: fetch for them now
	}
	if len(subs) == 0 {
		return
	}
	ctx, cancel := h.call(nil)
	err := h.store.Subscribed(ctx, cl.ID, subs, nil)
	cancel()
	if err != nil && len(subs) > 1 && errors.Is(err, persist.ErrInvalid) {
		// One filter the store cannot take rejects them all: store the
		// others one by one.
		for _, s := range subs {
			ctx, cancel := h.call(nil)
			err := h.store.Subscribed(ctx, cl.ID, []persist.Subscription{s}, nil)
			cancel()
			if err != nil {
				h.fail("Subscribed", cl.ID, s.Filter, err)
			}
			h.setUnstored(cl.ID, s.Filter, err != nil)
		}
	} else {
		if err != nil {
			h.fail("Subscribed", cl.ID, subs[0].Filter, err)
		}
		for _, s := range subs {
			h.setUnstored(cl.ID, s.Filter, err != nil)
		}
	}
}

// OnUnsubscribed removes the subscriptions from the store (mochi also
// calls it when a session ends: clean start, or expiry at disconnect).
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || h.closed.Load() || len(pk.Filters) == 0 {
		return
	}
	removed := make([]string, len(pk.Filters))
	for i, s := range pk.Filters {
		removed[i] = normFilter(s.Filter)
		h.setUnstored(cl.ID, removed[i], false)
	}
	h.removeSubs(cl.ID, removed)
}

// removeSubs removes a client's stored subscriptions to filters; when the
// store refuses the batch as invalid, each filter is tried on its own (as in
// OnSubscribed) so one bad filter does not keep the others.
func (h *Hook) removeSubs(clientID string, filters []string) {
	ctx, cancel := h.call(nil)
	err := h.store.Subscribed(ctx, clientID, nil, filters)
	cancel()
	if err != nil && len(filters) > 1 && errors.Is(err, persist.ErrInvalid) {
		for _, f := range filters {
			ctx, cancel := h.call(nil)
			if err := h.store.Subscribed(ctx, clientID, nil, []string{f}); err != nil {
				h.fail("Subscribed", clientID, f, err)
			}
			cancel()
		}
	} else if err != nil {
		h.fail("Subscribed", clientID, strings.Join(filters, " "), err)
	}
}
