package mochi

import (
	"context"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// A queue fetch claims every message it returns, and a consumer's own
// claims come back, renewed, at each of its fetches. A queue message that
// the consumer may not take — Options.ACL denies it the topic, or its No
// Local subscription refuses its own message — would so stay claimed by
// it for as long as it keeps fetching, and no other consumer would get it.
// The delivery remembers such refusals and gives their claims back: it
// fetches the message's topic again with a lease of releaseLease, which
// hands the message to whoever fetches next, and asks the other connected
// consumers on this node that may take it to fetch. Each later fetch that
// claims a refused message again is followed by such a release.
//
// A release renews, with that short lease, every claim of the client on
// the topic; so it waits until the client has no other message of that
// topic in flight, fetched or acknowledged but not recorded.

// releaseLease is the lease a release gives the refused messages.
const releaseLease = time.Millisecond

// refusal is a queue message a client's delivery may not take.
type refusal struct {
	topic string
	from  string    // publisher, for the No Local of other consumers
	seen  time.Time // when a fetch last returned it (claimed it)
	held  bool      // claimed by the client since the last release
}

// refuse records that queue message m is not delivered to this client.
func (c *conn) refuse(m *persist.Message) {
	if c.refused == nil {
		c.refused = map[string]*refusal{}
	}
	r := c.refused[m.ID]
	if r == nil {
		r = &refusal{topic: m.Topic, from: m.From}
		c.refused[m.ID] = r
	}
	r.seen = time.Now()
	if !r.held {
		r.held = true
		c.nrefused++
	}
}

// mayTake reports whether the client may be given m: a subscription of
// its matches the topic, No Local does not refuse it and Options.ACL
// allows reading the topic.
func (c *conn) mayTake(m *persist.Message) bool {
	sub, ok := matchSubs(c.subs, m.Topic, m.Mode == persist.Queue)
	return ok && !(sub.noLocal && m.From == c.id) && c.h.canRead(c.cl, m.Topic)
}

// reclaimed handles a queue message that a fetch returned although the
// client refused it before: the fetch claimed it again, so it is to be
// released again — unless the client may take it now (its rules
// changed), when it is delivered as any other. It reports whether m is
// to be delivered.
func (c *conn) reclaimed(m *persist.Message) bool {
	if _, ok := c.refused[m.ID]; !ok || m.Mode != persist.Queue {
		return false
	}
	if c.mayTake(m) {
		if c.refused[m.ID].held {
			c.nrefused--
		}
		delete(c.refused, m.ID)
		delete(c.known, m.ID)
		return true
	}
	c.refuse(m)
	return false
}

// busy returns the topics of queue messages the client has claimed and
// not given up: fetched and not sent yet, in flight, or acknowledged but
// not recorded.
func (c *conn) busy() map[string]bool {
	b := map[string]bool{}
	for _, m := range c.backlog {
		if m != nil && m.Mode == persist.Queue {
			b[m.Topic] = true
		}
	}
	for _, list := range [][]*entry{c.ready, c.unsent} {
		for _, e := range list {
			if e.mode == persist.Queue {
				b[e.topic] = true
			}
		}
	}
	for _, e := range c.pending {
		if e.mode == persist.Queue {
			b[e.topic] = true
		}
	}
	return b
}

// release gives back the claims of refused queue messages (see above)
// and reports whether it called the store. final is set when the
// connection ends.
func (c *conn) release(final bool) bool {
	if c.nrefused == 0 || (!final && time.Now().Before(c.releaseAt)) {
		return false
	}
	byTopic := map[string][]string{}
	for id, r := range c.refused {
		if r.held {
			byTopic[r.topic] = append(byTopic[r.topic], id)
		}
	}
	busy := c.busy()
	parent := c.ctx
	if final {
		parent = c.h.base
	}
	called := false
	for t, ids := range byTopic {
		if busy[t] {
			continue // released once the client's claims on t are done
		}
		err := c.releaseTopic(parent, t, ids)
		called = true
		if err != nil && !permanent(err) {
			if c.ctx.Err() == nil || final {
				c.h.fail("FetchOffline", c.id, t, err)
			}
			c.releaseAt = time.Now().Add(time.Second)
			continue
		}
		if err != nil {
			c.h.fail("FetchOffline", c.id, t, err)
		}
		// Whether or not the fetch returned each of them: what it did not
		// return is not the client's (another consumer took it, it is
		// gone) or comes back with the client's next fetch.
		offered := map[string]bool{}
		for _, id := range ids {
			r := c.refused[id]
			r.held = false
			c.nrefused--
			if !offered[r.from] {
				offered[r.from] = true
				c.h.offer(c, t, r.from)
			}
		}
	}
	c.pruneRefused()
	return called
}

// releaseTopic fetches topic t with the release lease until the fetch
// returned every message of ids or returned fewer than it asked for (the
// rest is not the client's). It asks for len(ids) at first: the fetch
// returns, in ID order, the client's claims on t and unclaimed messages
// (those get the short lease too, which changes nothing for them), so
// unclaimed older ones may take the place of some of ids.
func (c *conn) releaseTopic(parent context.Context, t string, ids []string) error {
	left := make(map[string]bool, len(ids))
	for _, id := range ids {
		left[id] = true
	}
	for limit := len(ids); ; limit *= 2 {
		ctx, cancel := c.h.call(parent)
		msgs, err := c.h.store.FetchOffline(ctx, c.id, t, persist.Fetch{Mode: persist.Queue, Limit: limit, Lease: releaseLease})
		cancel()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			delete(left, m.ID)
		}
		if len(left) == 0 || len(msgs) < limit {
			return nil
		}
	}
}

// pruneRefused forgets refusals that no fetch returned for two leases:
// another consumer took them, or they are gone.
func (c *conn) pruneRefused() {
	old := time.Now().Add(-2 * c.h.opts.Fetch.LeaseOrDefault())
	for id, r := range c.refused {
		if !r.held && r.seen.Before(old) {
			delete(c.refused, id)
			if c.known[id] == 0 {
				delete(c.known, id)
			}
		}
	}
}

// offerDelay is how long after a release the other consumers are asked
// to fetch a second time: once the release lease has run out — a fetch
// within it finds the messages still claimed, and nothing would ask
// again — with room for a store that keeps times to the millisecond.
const offerDelay = 10 * releaseLease

// offer asks the connected consumers on this node other than from's
// client that may take a queue message of topic published by origin to
// claim from the store: now, and again offerDelay from now.
func (h *Hook) offer(from *conn, topic, origin string) {
	subs := h.server.Topics.Subscribers(topic)
	var to []*conn
	try := func(id string, noLocal bool) {
		if id == from.id || (noLocal && id == origin) {
			return
		}
		cl, ok := h.server.Clients.Get(id)
		if !ok || cl.Closed() || !h.canRead(cl, topic) {
			return
		}
		if c := h.connFor(cl); c != nil {
			to = append(to, c)
		}
	}
	for id, s := range subs.Subscriptions {
		try(id, s.NoLocal)
	}
	for _, members := range subs.Shared {
		for id := range members {
			try(id, false)
		}
	}
	for _, c := range to {
		c.kick()
	}
	if len(to) > 0 {
		time.AfterFunc(offerDelay, func() {
			for _, c := range to {
				c.kick()
			}
		})
	}
}
