package action

import (
	"context"
	"maps"

	"github.com/mqttpersist/mqttpersist/persist"
)

// hooks are the hooks a raw action (SQL statements, Redis commands) can
// run on, with the event of the Store verb that runs it.
var hooks = map[string]persist.Event{
	"client.connected":     persist.OnConnected,
	"client.disconnected":  persist.OnConnected,
	"session.subscribed":   persist.OnSubscribed,
	"session.unsubscribed": persist.OnSubscribed,
	"message.publish":      persist.OnPublish,
	"message.retain":       persist.OnRetain,
	"message.acked":        persist.OnAcked,
}

// Hooks returns the hooks a raw action can run on (client.connected,
// client.disconnected, session.subscribed, session.unsubscribed,
// message.publish, message.retain and message.acked), each with the event
// of the Store verb that runs it. The map is the caller's to change.
func Hooks() map[string]persist.Event {
	return maps.Clone(hooks)
}

// HookEvent returns the event of a raw action's hook, or an error
// matching persist.ErrInvalid that names the hook and lists the known
// ones.
func HookEvent(hook string) (persist.Event, error) {
	if ev, ok := hooks[hook]; ok {
		return ev, nil
	}
	return 0, persist.Errorf(persist.ErrInvalid, "unknown hook %q (want client.connected, client.disconnected, session.subscribed, session.unsubscribed, message.publish, message.retain or message.acked)", hook)
}

// RunHook runs the raw actions of hook once for each element of vars (all
// of one Store call); op names the Store verb for errors.
type RunHook func(ctx context.Context, op, hook string, vars []Vars) error

// HookActions is a persist.Store that turns the verbs into runs of hooks
// (see Hooks) with their variables (see MessageVars and the others), so
// that a store's raw actions only say how to run one hook. It handles the
// events given to NewHookActions; FetchOffline returns an error matching
// persist.ErrUnsupported.
type HookActions struct {
	persist.Unsupported
	run    RunHook
	events persist.Event
}

// NewHookActions returns HookActions that handle events by calling run.
func NewHookActions(events persist.Event, run RunHook) *HookActions {
	return &HookActions{run: run, events: events}
}

// Events reports the events the actions handle.
func (a *HookActions) Events() persist.Event { return a.events }

// Connected runs the client.connected or client.disconnected actions.
func (a *HookActions) Connected(ctx context.Context, c *persist.Client) error {
	hook := "client.disconnected"
	if c.Online {
		hook = "client.connected"
	}
	return a.run(ctx, "Connected", hook, []Vars{ClientVars(c)})
}

// Subscribed runs the session.unsubscribed actions for each removed filter,
// then the session.subscribed actions for each subscription.
func (a *HookActions) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	un := make([]Vars, len(removed))
	for i, f := range removed {
		un[i] = SubscriptionVars(clientID, persist.Subscription{Filter: f})
	}
	if err := a.run(ctx, "Subscribed", "session.unsubscribed", un); err != nil {
		return err
	}
	vars := make([]Vars, len(subs))
	for i, sub := range subs {
		vars[i] = SubscriptionVars(clientID, sub)
	}
	return a.run(ctx, "Subscribed", "session.subscribed", vars)
}

// Publish runs the message.publish actions for each message of the batch.
func (a *HookActions) Publish(ctx context.Context, msgs ...*persist.Message) error {
	vars := make([]Vars, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return persist.Errorf(persist.ErrInvalid, "Publish: message %d is nil", i)
		}
		vars[i] = MessageVars(m)
	}
	return a.run(ctx, "Publish", "message.publish", vars)
}

// Retain runs the message.retain actions.
func (a *HookActions) Retain(ctx context.Context, m *persist.Message) error {
	if m == nil {
		return persist.Errorf(persist.ErrInvalid, "Retain: nil message")
	}
	return a.run(ctx, "Retain", "message.retain", []Vars{MessageVars(m)})
}

// Acked runs the message.acked actions for each ack.
func (a *HookActions) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	vars := make([]Vars, len(acks))
	for i, ack := range acks {
		vars[i] = AckVars(clientID, ack)
	}
	return a.run(ctx, "Acked", "message.acked", vars)
}
