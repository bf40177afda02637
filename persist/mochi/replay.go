package mochi

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// fetch returns the stored messages for the client's subscriptions that
// it was not sent yet, in ID order: at most a window more than it has in
// flight, for each subscription; full reports that a subscription's fetch
// reached that limit (the store may hold more).
func (c *conn) fetch() (out []*persist.Message, full bool, _ error) {
	c.subs = c.cl.State.Subscriptions.GetAll()
	c.syncWatch() // before the fetch: what is stored after it is heard of
	if len(c.subs) == 0 {
		return nil, false, nil
	}
	filters := make([]string, 0, len(c.subs))
	c.mu.Lock()
	for f := range c.subs {
		if f = normFilter(f); !c.unsure[f] {
			filters = append(filters, f)
		}
	}
	c.mu.Unlock()
	// A filter not (yet) stored has no start in the store (a fetch would
	// replay the topic's history); mochi delivers its messages live.
	filters = slices.DeleteFunc(filters, func(f string) bool { return c.h.isUnstored(c.id, f) })
	slices.Sort(filters)
	opt := persist.Fetch{
		Since: c.h.opts.Fetch.Since,
		Lease: c.h.opts.Fetch.Lease,
	}
	inFlight := len(c.pending) + len(c.unsent) + len(c.refused)
	var errs []error
	seen, sending := map[string]bool{}, map[string]bool{}
	for _, f := range filters {
		// A shared group's page stays Options.Page: what one member
		// fetches is claimed from the others (see grow).
		page := c.page
		if isShared(f) {
			page = c.h.opts.Page
		}
		opt.Limit = max(c.window, page) + inFlight
		ctx, cancel := c.h.call(c.ctx)
		msgs, err := c.h.store.FetchOffline(ctx, c.id, f, opt)
		cancel()
		full = full || len(msgs) >= opt.Limit
		if err != nil {
			if c.ctx.Err() != nil {
				return out, full, err
			}
			if permanent(err) {
				// The store cannot take this client or filter (too long,
				// say): nothing to replay for it, and no use trying again.
				if c.bad[f] == nil {
					c.bad[f] = err
					c.h.fail("FetchOffline", c.id, f, err)
				}
			} else {
				c.h.fail("FetchOffline", c.id, f, err)
				errs = append(errs, err)
			}
		}
		shared := isShared(f)
		for _, m := range msgs {
			if m == nil || (shared && m.Mode != persist.Queue && !c.h.groups) {
				continue // a group without claims has no fanout position
			}
			// Claimed for the group (its ack is the group's), noted for
			// the messages to send.
			group := shared && m.Mode == persist.Fanout
			if seen[m.ID] {
				if group && sending[m.ID] {
					c.claim(m.ID, f)
				}
				continue
			}
			seen[m.ID] = true
			if _, ok := c.known[m.ID]; !ok || c.reclaimed(m) {
				out = append(out, m)
				sending[m.ID] = true
				if group {
					c.claim(m.ID, f)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	return out, full, errors.Join(errs...)
}

// claim notes that message id was claimed for the group of shared filter f.
func (c *conn) claim(id, f string) {
	if c.claimed == nil {
		c.claimed = map[string][]string{}
	}
	if !slices.Contains(c.claimed[id], f) {
		c.claimed[id] = append(c.claimed[id], f)
	}
}

// releaseGroups gives back the claims of the groups' messages that this
// connection fetched and did not send and, when the client's session ends
// with it, of those it sent that were not acknowledged: another member
// gets them at once, not when the lease runs out [MQTT-4.8.2: the Server
// SHOULD send it to another member when the session terminates].
func (c *conn) releaseGroups() {
	rel, ok := c.h.store.(interface {
		ReleaseGroup(ctx context.Context, group, member string, ids ...string) error
	})
	if !ok || !c.h.groups {
		return
	}
	byGroup := map[string][]string{}
	for id, gs := range c.claimed {
		for _, g := range gs {
			byGroup[g] = append(byGroup[g], id)
		}
	}
	c.claimed = nil
	if c.endsSession.Load() {
		for _, e := range c.pending {
			for _, g := range e.groups {
				byGroup[g] = append(byGroup[g], e.id)
			}
		}
	}
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		ctx, cancel := c.h.call(c.h.base)
		err := rel.ReleaseGroup(ctx, g, c.id, byGroup[g]...)
		cancel()
		if err != nil {
			c.h.fail("ReleaseGroup", c.id, g, err)
		}
	}
}

// sendBacklog sends the fetched messages while the client has room,
// written together (see batch).
func (c *conn) sendBacklog() bool {
	defer c.batch()()
	sent := false
	// The subscriptions as they are now, as mochi would merge them for a
	// message published now (a subscription made while the fetch ran
	// counts, one removed does not).
	c.subs = c.cl.State.Subscriptions.GetAll()
	for len(c.backlog) > 0 && c.ctx.Err() == nil {
		if c.room() <= 0 {
			return sent
		}
		m := c.backlog[0]
		c.backlog[0] = nil
		c.backlog = c.backlog[1:]
		c.deliverStored(m)
		sent = true
	}
	return true
}

// deliverStored sends a message from the store as the client's matching
// subscriptions ask.
func (c *conn) deliverStored(m *persist.Message) {
	groups := c.claimed[m.ID]
	delete(c.claimed, m.ID)
	if _, ok := c.known[m.ID]; ok {
		return
	}
	now := time.Now()
	if m.Expired(now) {
		return
	}
	if (m.Mode == persist.Queue || len(groups) > 0) && now.Sub(c.fetchedAt) > c.h.opts.Fetch.LeaseOrDefault()/2 {
		// The claim is running out: not sent on it, but claimed again by
		// the next fetch (the client's own claims come back renewed),
		// unless another consumer claims it first.
		c.caughtUp = false
		return
	}
	sub, own := c.match(m)
	ok := own
	if len(groups) > 0 {
		// As mochi merges a member's subscriptions for a message it
		// picked the member for.
		sub, ok = matchSubs(c.subs, m.Topic, true)
	}
	if !ok {
		// Unsubscribed meanwhile (a queue or group claim runs out and
		// goes to another consumer).
		c.known[m.ID] = now.UnixNano()
		return
	}
	e := &entry{id: m.ID, topic: m.Topic, mode: m.Mode, stored: true, groups: groups, notOwn: !own && len(groups) > 0}
	if (sub.noLocal && m.From == c.id) || !c.h.canRead(c.cl, m.Topic) {
		c.known[m.ID] = 0
		switch {
		case e.notOwn:
			// Not for this member: another one gets it when the claim
			// runs out.
			c.known[m.ID] = now.UnixNano()
		case m.Mode == persist.Fanout:
			c.finished(e) // passed over for good [MQTT-3.8.3-3]
		default:
			c.refuse(m) // its claim goes back (acl.go)
		}
		return
	}
	v5 := c.cl.Properties.ProtocolVersion == 5
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{
			Type:   packets.Publish,
			Qos:    min(m.QoS, sub.qos, c.h.server.Options.Capabilities.MaximumQos),
			Retain: m.Retain && sub.rap && v5,
		},
		TopicName:  m.Topic,
		Payload:    m.Payload,
		Origin:     m.From,
		Created:    now.Unix(),
		Expiry:     expiryUnix(m.Expiry),
		Properties: properties(m),
	}
	pk.Properties.SubscriptionIdentifier = sub.ids
	if c.send(pk, e) {
		c.h.replayed.Add(1)
	}
}
