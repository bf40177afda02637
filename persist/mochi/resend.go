package mochi

// Redeliveries. A delivery still unacknowledged when its connection ends
// is taken out of mochi's session (conn.finish) and comes again from the
// store on the client's next connection. When that connection is on the
// same node (and the Hook was not restarted), the Hook knows the message
// was sent before: it sends it again as mochi resends a session's
// messages, with DUP set and the packet ID it had [MQTT-3.3.1-1]
// [MQTT-4.4.0-1]. After a restart, or on another node, it is a first
// delivery to the Hook (DUP 0, a new packet ID).

// keepResends remembers the deliveries of a connection that ends
// unacknowledged (pending: packet ID → delivery), and those an earlier
// connection left that this one did not send again, for the client's next
// connection, unless its session ends with the connection.
func (c *conn) keepResends() {
	// The fields one by one: mochi writes others of Properties (the
	// will) as the connection ends.
	p := &c.cl.Properties
	v5 := p.ProtocolVersion == 5
	if len(c.pending)+len(c.resends) == 0 || (v5 && p.Props.SessionExpiryInterval == 0) || (!v5 && p.Clean) {
		return
	}
	m := make(map[string]uint16, len(c.pending)+len(c.resends))
	for id, pid := range c.resends {
		m[id] = pid
	}
	for pid, e := range c.pending {
		m[e.id] = pid
	}
	c.h.mu.Lock()
	c.h.resends[c.id] = m
	c.h.mu.Unlock()
}

// takeResends hands the deliveries the client's previous connection left
// unacknowledged to its new one (none after a clean start).
func (c *conn) takeResends(clean bool) {
	c.h.mu.Lock()
	m := c.h.resends[c.id]
	delete(c.h.resends, c.id)
	c.h.mu.Unlock()
	if !clean {
		c.resends = m
	}
}

// dropResends forgets the client's unacknowledged deliveries (its session
// expired).
func (h *Hook) dropResends(client string) {
	h.mu.Lock()
	delete(h.resends, client)
	h.mu.Unlock()
}

// resendID returns the packet ID a message had when an earlier connection
// left it unacknowledged, if it had one and the ID is free.
func (c *conn) resendID(id string) (uint16, bool) {
	pid, ok := c.resends[id]
	if !ok {
		return 0, false
	}
	delete(c.resends, id)
	if _, used := c.cl.State.Inflight.Get(pid); used {
		return 0, false
	}
	return pid, true
}

// reserved reports whether pid is kept for a redelivery.
func (c *conn) reserved(pid uint16) bool {
	for _, p := range c.resends {
		if p == pid {
			return true
		}
	}
	return false
}
