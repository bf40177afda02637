package mochi

import (
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttpersist/mqttpersist/persist"
)

// startWatch starts the Hook's watch when the store is a persist.Watcher:
// the node hears of messages stored on other nodes for the filters its
// clients subscribe to (each connection adds its filters before it
// fetches, see syncWatch), and of clients connecting on other nodes.
func (h *Hook) startWatch() error {
	wr, ok := h.store.(persist.Watcher)
	if !ok {
		return nil
	}
	w, err := wr.Watch(h.base, h.notice)
	if err != nil {
		return err
	}
	h.watch = w
	return nil
}

// notice acts on a store's notice: a connection whose subscriptions match
// the topic fetches from the store; a client that connected on another
// node is disconnected here.
func (h *Hook) notice(n persist.Notice) {
	switch {
	case n.Client != "" && n.Offline:
		if n.Node != h.opts.Node {
			// Also to a connection ending here, which may still wait for
			// it (see handoff).
			h.mu.RLock()
			c, e := h.conns[n.Client], h.ending[n.Client]
			h.mu.RUnlock()
			for _, x := range []*conn{c, e} {
				if x != nil {
					x.releasedBy(n.Node)
				}
			}
		}
	case n.Client != "":
		if n.Node != h.opts.Node {
			h.takeover(n)
		}
	case n.Topic == "":
		// The watch reconnected: anything may have been missed.
		h.mu.RLock()
		for _, c := range h.conns {
			c.kick()
		}
		h.mu.RUnlock()
	case n.Node != h.opts.Node:
		// This node's own messages were delivered live.
		subs := h.server.Topics.Subscribers(n.Topic)
		h.mu.RLock()
		for id := range subs.Subscriptions {
			if c := h.conns[id]; c != nil {
				c.kick()
			}
		}
		for _, members := range subs.Shared {
			for id := range members {
				if c := h.conns[id]; c != nil {
					c.kick()
				}
			}
		}
		h.mu.RUnlock()
	}
}

// takeover closes this node's connection of a client that connected on
// another node since [MQTT-3.1.4-2]: its unacknowledged deliveries go back
// to the store (see conn.finish) for the new connection.
func (h *Hook) takeover(n persist.Notice) {
	h.mu.RLock()
	c := h.conns[n.Client]
	h.mu.RUnlock()
	if c == nil || c.cl.Closed() || (!n.At.IsZero() && c.since.After(n.At)) {
		return
	}
	h.log.Info("mqttpersist: client connected on another node; closing its connection here", "client", n.Client, "node", n.Node)
	_ = h.server.DisconnectClient(c.cl, packets.ErrSessionTakenOver)
}

// syncWatch makes the Hook's watch cover the connection's subscriptions:
// filters it has now are added, those it no longer has removed. A filter
// the watch could not add is tried again at the next fetch.
func (c *conn) syncWatch() {
	w := c.h.watch
	if w == nil {
		return
	}
	now := make(map[string]bool, len(c.subs))
	var add, rm []string
	for f := range c.subs {
		f = normFilter(f)
		now[f] = true
		if !c.watched[f] {
			add = append(add, f)
		}
	}
	for f := range c.watched {
		if !now[f] {
			rm = append(rm, f)
		}
	}
	c.changeWatch(add, rm)
}

// changeWatch adds and removes filters of the connection's watch.
func (c *conn) changeWatch(add, rm []string) {
	w := c.h.watch
	if w == nil || (len(add) == 0 && len(rm) == 0) {
		return
	}
	parent := c.ctx
	if parent.Err() != nil {
		parent = c.h.base
	}
	if len(add) > 0 {
		ctx, cancel := c.h.call(parent)
		err := w.Add(ctx, add...)
		cancel()
		if err != nil {
			c.h.fail("Watch", c.id, add[0], err)
		} else {
			for _, f := range add {
				c.watched[f] = true
			}
		}
	}
	if len(rm) > 0 {
		ctx, cancel := c.h.call(parent)
		err := w.Remove(ctx, rm...)
		cancel()
		if err != nil {
			c.h.fail("Watch", c.id, rm[0], err)
		}
		for _, f := range rm {
			delete(c.watched, f)
		}
	}
}

// unwatch removes every filter of the connection from the watch.
func (c *conn) unwatch() {
	rm := make([]string, 0, len(c.watched))
	for f := range c.watched {
		rm = append(rm, f)
	}
	c.changeWatch(nil, rm)
}
