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
	"github.com/mochi-mqtt/server/v2/hooks/storage"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Defaults of Options.
const (
	DefaultTimeout = 5 * time.Second
	DefaultWindow  = 256
	DefaultBuffer  = 1024
	DefaultPage    = 256
)

// Options configure a Hook. The zero value (or nil) gives the defaults.
type Options struct {
	// Node names this broker node in client state and stored messages;
	// "" means the host name.
	Node string
	// Timeout bounds every store call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives store failures (with client, topic and operation);
	// nil means the logger mochi gives the hook.
	Logger *slog.Logger
	// Fetch holds the Since and Lease of every FetchOffline call (the
	// seeds' offline_opts time_range and the queue lease); its Mode and
	// Limit are ignored: the Router's rules decide the mode and the Hook
	// pages by Window.
	Fetch persist.Fetch
	// Window is the most persisted messages in flight to one client
	// (sent, not yet acknowledged); it is further capped by the client's
	// Receive Maximum and half of the server's MaximumInflight. 0 means
	// DefaultWindow.
	Window int
	// Page is how many messages one FetchOffline call asks for (on top of
	// those in flight); a client replays a page through its Window. Queue
	// messages are claimed a page at a time. 0 means DefaultPage.
	Page int
	// Buffer is the most live messages held in memory for one client that
	// cannot take them yet; beyond it they are dropped from memory and
	// delivered from the store instead. 0 means DefaultBuffer.
	Buffer int
	// QoS0 stores QoS 0 publishes too when the store is not a Router (a
	// Router decides by its rules' QoS0).
	QoS0 bool
	// NoRetainSync turns off refreshing the broker's retained messages
	// from the store for every new subscription (which makes retained
	// messages set on other nodes visible); StoredRetainedMessages still
	// loads them at start.
	NoRetainSync bool
	// Fallback delivers a QoS 1 or 2 message the store failed to take
	// from mochi's memory and acknowledges it, as mochi alone would (a
	// restart then loses it). By default such a message is refused: an
	// MQTT 5 publisher gets a PUBACK with reason Unspecified error (QoS 1)
	// and a 3.1.1 publisher or a QoS 2 one gets no acknowledgement, so it
	// sends the message again. Either way the failure is logged and
	// counted. A message the store can never take (ErrInvalid, such as a
	// topic longer than it allows) always falls back, as do QoS 0 ones.
	Fallback bool
	// ACL, when set, is asked whether a client may read a topic before a
	// persisted message is delivered to it (live or from the store). Pass
	// the OnACLCheck method of the server's auth hook to keep per-topic read
	// rules; nil allows every delivery to a subscription the broker
	// accepted.
	ACL func(cl *mqtt.Client, topic string, write bool) bool
}

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
	inline       *mqtt.Client // stands in for mochi's inline client in inline subscription handlers

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

	stored, live, replayed, acked, spilled, failed atomic.Uint64
}

// New returns a Hook that keeps the state of server in store (normally a
// *persist.Router). server and store are required; nil opts means the
// defaults. Bad arguments are reported by Init, which server.AddHook calls.
func New(server *mqtt.Server, store persist.Store, opts *Options) *Hook {
	h := &Hook{server: server, store: store, conns: map[string]*conn{}, ending: map[string]*conn{}, unstored: map[string]map[string]bool{}}
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
	if f, ok := h.store.(interface {
		Fetchable(topic string, qos byte) (persist.Mode, bool)
	}); ok {
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

// call returns a context for one store call.
func (h *Hook) call(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = h.base
	}
	return context.WithTimeout(parent, h.opts.Timeout)
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

// StoredRetainedMessages returns the store's retained messages (every
// topic matching "#") for mochi to load at start.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	if h.retainLookup == nil {
		return nil, nil
	}
	ctx, cancel := h.call(nil)
	defer cancel()
	msgs, err := h.retainLookup.Retained(ctx, "#")
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
