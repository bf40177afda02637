package persist

import (
	"context"
)

// ActionHooks are the seeds' hooks a raw action (SQL statements, Redis
// commands) can run on, with the event of the Store verb that runs it.
var ActionHooks = map[string]Event{
	"client.connected":     OnConnected,
	"client.disconnected":  OnConnected,
	"session.subscribed":   OnSubscribed,
	"session.unsubscribed": OnSubscribed,
	"message.publish":      OnPublish,
	"message.retain":       OnRetain,
	"message.acked":        OnAcked,
}

// ActionHook returns the event of a raw action's hook, or an error
// matching ErrInvalid that names the hook and lists the known ones.
func ActionHook(hook string) (Event, error) {
	if ev, ok := ActionHooks[hook]; ok {
		return ev, nil
	}
	return 0, Errorf(ErrInvalid, "unknown hook %q (want client.connected, client.disconnected, session.subscribed, session.unsubscribed, message.publish, message.retain or message.acked)", hook)
}

// RunHook runs the raw actions of hook once for each element of vars (all
// of one Store call); op names the Store verb for errors.
type RunHook func(ctx context.Context, op, hook string, vars []Vars) error

// HookActions turns the Store verbs into runs of the seeds' hooks with
// their variables (see MessageVars and the others), so that a store's raw
// actions only say how to run one hook. It handles the events given to
// NewHookActions; FetchOffline is unsupported.
type HookActions struct {
	Unsupported
	run    RunHook
	events Event
}

// NewHookActions returns HookActions that handle events by calling run.
func NewHookActions(events Event, run RunHook) *HookActions {
	return &HookActions{run: run, events: events}
}

// Events reports the events the actions handle.
func (a *HookActions) Events() Event { return a.events }

// Connected runs the client.connected or client.disconnected actions.
func (a *HookActions) Connected(ctx context.Context, c *Client) error {
	hook := "client.disconnected"
	if c.Online {
		hook = "client.connected"
	}
	return a.run(ctx, "Connected", hook, []Vars{ClientVars(c)})
}

// Subscribed runs the session.unsubscribed actions for each removed filter,
// then the session.subscribed actions for each subscription.
func (a *HookActions) Subscribed(ctx context.Context, clientID string, subs []Subscription, removed []string) error {
	un := make([]Vars, len(removed))
	for i, f := range removed {
		un[i] = SubscriptionVars(clientID, Subscription{Filter: f})
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
func (a *HookActions) Publish(ctx context.Context, msgs ...*Message) error {
	vars := make([]Vars, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return Errorf(ErrInvalid, "Publish: message %d is nil", i)
		}
		vars[i] = MessageVars(m)
	}
	return a.run(ctx, "Publish", "message.publish", vars)
}

// Retain runs the message.retain actions.
func (a *HookActions) Retain(ctx context.Context, m *Message) error {
	if m == nil {
		return Errorf(ErrInvalid, "Retain: nil message")
	}
	return a.run(ctx, "Retain", "message.retain", []Vars{MessageVars(m)})
}

// Acked runs the message.acked actions for each ack.
func (a *HookActions) Acked(ctx context.Context, clientID string, acks ...Ack) error {
	vars := make([]Vars, len(acks))
	for i, ack := range acks {
		vars[i] = AckVars(clientID, ack)
	}
	return a.run(ctx, "Acked", "message.acked", vars)
}
