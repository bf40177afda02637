package mochi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Stats are a Hook's counters since New.
type Stats struct {
	// Stored counts messages stored for offline delivery (tagged).
	Stored uint64
	// Live counts persisted messages delivered to connected clients as
	// they were published.
	Live uint64
	// Replayed counts messages delivered from the store.
	Replayed uint64
	// Acked counts acknowledgements recorded in the store.
	Acked uint64
	// Spilled counts live messages a client could not take in time, left
	// to the store to deliver.
	Spilled uint64
	// Failed counts store calls that failed (each is logged).
	Failed uint64
}

// Hook persists a mochi broker's clients, subscriptions, messages,
// retained messages and acks in a persist.Store and delivers stored
// messages to the clients that missed them. Create it with New and add it
// with server.AddHook(h, nil).
type Hook struct {
	mqtt.HookBase

	server *mqtt.Server
	store  persist.Store
	opts   Options
	err    error // from New, returned by Init
	log    *slog.Logger

	subsLookup   persist.SubscriptionLookup
	retainLookup persist.RetainLookup
	clientLookup persist.ClientLookup
	fetchable    func(topic string, qos byte) (persist.Mode, bool)
	// groups: the store gives a shared group's messages to one member
	// cluster-wide (persist.Router.SharedGroups); members get them from
	// the store only.
	groups bool
	inline *mqtt.Client  // stands in for mochi's inline client in inline subscription handlers
	watch  persist.Watch // the node's watch of the store, when it is a persist.Watcher

	base   context.Context
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	mu     sync.RWMutex
	conns  map[string]*conn // the current connection of each client ID
	ending map[string]*conn // connections OnDisconnect is ending
	// unstored holds, per client, the filters of subscriptions the store
	// did not take: mochi keeps them, and restoring does not drop them.
	unstored map[string]map[string]bool
	// resends holds, per client, the deliveries its last connection left
	// unacknowledged: message ID → packet ID (resend.go).
	resends map[string]map[string]uint16

	stored, live, replayed, acked, spilled, failed atomic.Uint64
}

// New returns a Hook that keeps the state of server in store (normally a
// *persist.Router). server and store are required; nil opts means the
// defaults. Bad arguments are reported by Init, which server.AddHook calls.
func New(server *mqtt.Server, store persist.Store, opts *Options) *Hook {
	h := &Hook{server: server, store: store, conns: map[string]*conn{}, ending: map[string]*conn{}, unstored: map[string]map[string]bool{}, resends: map[string]map[string]uint16{}}
	if opts != nil {
		h.opts = *opts
	}
	h.err = h.resolve()
	h.base, h.cancel = context.WithCancel(context.Background())
	return h
}

func (h *Hook) resolve() error {
	o := &h.opts
	switch {
	case h.server == nil:
		return errors.New("mochi: New: nil server")
	case h.store == nil:
		return errors.New("mochi: New: nil store")
	case o.Timeout < 0:
		return fmt.Errorf("mochi: New: negative Timeout %v", o.Timeout)
	case o.Window < 0:
		return fmt.Errorf("mochi: New: negative Window %d", o.Window)
	case o.Buffer < 0:
		return fmt.Errorf("mochi: New: negative Buffer %d", o.Buffer)
	case o.Page < 0:
		return fmt.Errorf("mochi: New: negative Page %d", o.Page)
	case o.Fetch.Since < 0:
		return fmt.Errorf("mochi: New: negative Fetch.Since %v", o.Fetch.Since)
	case o.Fetch.Lease < 0:
		return fmt.Errorf("mochi: New: negative Fetch.Lease %v", o.Fetch.Lease)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.Buffer == 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Page == 0 {
		o.Page = DefaultPage
	}
	if o.Node == "" {
		o.Node, _ = os.Hostname()
	}
	h.subsLookup, _ = h.store.(persist.SubscriptionLookup)
	h.retainLookup, _ = h.store.(persist.RetainLookup)
	h.clientLookup, _ = h.store.(persist.ClientLookup)
	if g, ok := h.store.(interface{ SharedGroups() bool }); ok {
		h.groups = g.SharedGroups()
	}
	if f, ok := h.store.(persist.FetchPlanner); ok {
		h.fetchable = f.Fetchable
	} else {
		ev := persist.AllEvents
		if es, ok := h.store.(persist.EventSupporter); ok {
			ev = es.Events()
		}
		keeps := ev.Has(persist.OnPublish | persist.OnFetch)
		qos0 := o.QoS0
		h.fetchable = func(_ string, qos byte) (persist.Mode, bool) {
			return persist.Fanout, keeps && (qos > 0 || qos0)
		}
	}
	return nil
}

// ID returns "mqttpersist".
func (h *Hook) ID() string { return "mqttpersist" }

// Provides reports which mochi hook methods the Hook implements.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnPublish, mqtt.OnPublished, mqtt.OnRetainMessage,
		mqtt.OnQosPublish, mqtt.OnPacketEncode, mqtt.OnPacketProcessed, mqtt.OnClientExpired:
		return true
	case mqtt.StoredRetainedMessages:
		return h.retainLookup != nil
	}
	return false
}

// Init checks the arguments given to New; server.AddHook calls it.
func (h *Hook) Init(config any) error {
	if h.err != nil {
		return h.err
	}
	if config != nil {
		return fmt.Errorf("mochi: Init: unexpected config %T (configure the hook with New's Options)", config)
	}
	h.log = h.opts.Logger
	if h.log == nil {
		h.log = h.Log
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.server.Options.InlineClient {
		h.inline = h.server.NewClient(nil, mqtt.LocalListener, mqtt.InlineClientId, true)
	}
	if err := h.startWatch(); err != nil {
		return fmt.Errorf("mochi: Init: watching the store: %w", err)
	}
	return nil
}

// Stop ends every client's delivery, recording the acks it already got,
// and waits up to the Timeout for that; mochi calls it when the server
// closes. The store is not closed: the caller owns it.
func (h *Hook) Stop() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.mu.Lock()
	conns := make([]*conn, 0, len(h.conns))
	for id, c := range h.conns {
		conns = append(conns, c)
		delete(h.conns, id)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.stop()
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * h.opts.Timeout):
		h.log.Warn("mqttpersist: stop: deliveries still running", "timeout", 2*h.opts.Timeout)
	}
	if h.watch != nil {
		if err := h.watch.Close(); err != nil {
			h.log.Warn("mqttpersist: stop: closing the watch", "error", err)
		}
	}
	h.cancel()
	return nil
}

// Stats returns the Hook's counters.
func (h *Hook) Stats() Stats {
	return Stats{
		Stored:   h.stored.Load(),
		Live:     h.live.Load(),
		Replayed: h.replayed.Load(),
		Acked:    h.acked.Load(),
		Spilled:  h.spilled.Load(),
		Failed:   h.failed.Load(),
	}
}

// publish stores m: a Router writes it through its stores' pipelines
// (group-committed with concurrent publishes, or queued in an outbox).
func (h *Hook) publish(m *persist.Message) error {
	ctx, cancel := h.call(nil)
	defer cancel()
	return h.store.Publish(ctx, m)
}

// call returns a context for one store call, ended by Options.Timeout, by
// parent (nil: the Hook's) or by the CancelFunc (see callCtx).
func (h *Hook) call(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = h.base
	}
	c := newCallCtx(parent, h.opts.Timeout)
	return c, c.stop
}

// fail counts and logs a failed store call.
func (h *Hook) fail(op, client, topic string, err error) {
	h.failed.Add(1)
	args := []any{"op", op, "error", err}
	if client != "" {
		args = append(args, "client", client)
	}
	if topic != "" {
		args = append(args, "topic", topic)
	}
	h.log.Warn("mqttpersist: store call failed", args...)
}

// connFor returns the current connection state of cl, or nil.
func (h *Hook) connFor(cl *mqtt.Client) *conn {
	h.mu.RLock()
	c := h.conns[cl.ID]
	h.mu.RUnlock()
	if c == nil || c.cl != cl {
		return nil
	}
	return c
}

// setUnstored records whether the store failed to take a client's
// subscription to filter.
func (h *Hook) setUnstored(client, filter string, failed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.unstored[client]
	if failed {
		if m == nil {
			m = map[string]bool{}
			h.unstored[client] = m
		}
		m[filter] = true
		return
	}
	if m != nil {
		delete(m, filter)
		if len(m) == 0 {
			delete(h.unstored, client)
		}
	}
}

func (h *Hook) isUnstored(client, filter string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.unstored[client][filter]
}

// canRead applies Options.ACL.
func (h *Hook) canRead(cl *mqtt.Client, topic string) bool {
	return h.opts.ACL == nil || h.opts.ACL(cl, topic, false)
}
