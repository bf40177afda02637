package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Action is a list of raw Redis commands that run on one of the seeds'
// hooks, such as {Hook: "client.connected", Commands: []string{"SET conn:${clientid} ${clientid}"}}.
// A command is split into arguments at spaces when it is compiled
// (persist.ParseCommand: double quotes group an argument with spaces);
// each ${name} is then replaced inside its one argument, so a value with
// spaces, quotes or CR LF never becomes another argument or command.
// persist.VarNames lists the names each hook has.
type Action struct {
	// Hook is one of client.connected, client.disconnected,
	// session.subscribed, session.unsubscribed, message.publish,
	// message.retain and message.acked.
	Hook string
	// Commands run, in order, for each event of Hook.
	Commands []string
	// Pipeline sends every command of one call (all events of a batch) in
	// one pipeline, one round trip (per node on a Cluster); otherwise each
	// command waits for the one before, and the first error stops the
	// rest.
	Pipeline bool
}

// actionHooks are the hooks an Action can name, with the verb that runs it.
var actionHooks = map[string]persist.Event{
	"client.connected":     persist.OnConnected,
	"client.disconnected":  persist.OnConnected,
	"session.subscribed":   persist.OnSubscribed,
	"session.unsubscribed": persist.OnSubscribed,
	"message.publish":      persist.OnPublish,
	"message.retain":       persist.OnRetain,
	"message.acked":        persist.OnAcked,
}

// Actions runs raw Redis command actions through the store's client. It is
// a persist.Store that handles only the events its actions name (see
// Events), for a persist.Rule; the other verbs return errors matching
// persist.ErrUnsupported.
type Actions struct {
	persist.Unsupported
	s      *Store
	hooks  map[string][]compiledAction
	events persist.Event
}

type compiledAction struct {
	cmds     []*persist.Command
	pipeline bool
}

// Actions compiles actions: an unknown hook or ${name}, an unterminated
// quote or an action without commands is an error matching
// persist.ErrInvalid that names the action. The Actions stop working when
// the store is closed.
func (s *Store) Actions(actions ...Action) (*Actions, error) {
	const op = "Actions"
	if len(actions) == 0 {
		return nil, invalid(op, "no actions")
	}
	a := &Actions{s: s, hooks: map[string][]compiledAction{}}
	for i, act := range actions {
		ev, ok := actionHooks[act.Hook]
		if !ok {
			return nil, invalid(op, "action %d: unknown hook %q (want client.connected, client.disconnected, session.subscribed, session.unsubscribed, message.publish, message.retain or message.acked)", i, act.Hook)
		}
		if len(act.Commands) == 0 {
			return nil, invalid(op, "action %d (%s): no commands", i, act.Hook)
		}
		ca := compiledAction{pipeline: act.Pipeline}
		for j, text := range act.Commands {
			c, err := persist.ParseCommand(text, persist.VarNames(ev)...)
			if err != nil {
				return nil, invalid(op, "action %d (%s) command %d: %v", i, act.Hook, j, err)
			}
			ca.cmds = append(ca.cmds, c)
		}
		a.hooks[act.Hook] = append(a.hooks[act.Hook], ca)
		a.events |= ev
	}
	return a, nil
}

// Events reports the events the actions handle.
func (a *Actions) Events() persist.Event { return a.events }

// args returns the arguments of c for vars, as go-redis takes them.
func args(c *persist.Command, vars persist.Vars) []any {
	strs := c.Args(vars)
	out := make([]any, len(strs))
	for i, s := range strs {
		out[i] = s
	}
	return out
}

// run runs the actions of hook once per vars.
func (a *Actions) run(ctx context.Context, op, hook string, vars []persist.Vars) error {
	s := a.s
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	acts := a.hooks[hook]
	if len(acts) == 0 || len(vars) == 0 {
		return nil
	}
	for _, act := range acts {
		var err error
		if act.pipeline {
			_, err = s.run(ctx, false, func(p redis.Pipeliner) {
				for _, v := range vars {
					for _, c := range act.cmds {
						p.Do(ctx, args(c, v)...)
					}
				}
			})
		} else {
		loop:
			for _, v := range vars {
				for _, c := range act.cmds {
					if err = s.c.Do(ctx, args(c, v)...).Err(); err != nil && !errors.Is(err, redis.Nil) {
						break loop
					}
					err = nil
				}
			}
		}
		if err != nil {
			return s.fail(ctx, op+"("+hook+")", err)
		}
	}
	return nil
}

// Connected runs the client.connected or client.disconnected actions.
func (a *Actions) Connected(ctx context.Context, c *persist.Client) error {
	hook := "client.disconnected"
	if c.Online {
		hook = "client.connected"
	}
	return a.run(ctx, "Connected", hook, []persist.Vars{persist.ClientVars(c)})
}

// Subscribed runs the session.unsubscribed actions for each removed filter,
// then the session.subscribed actions for each subscription.
func (a *Actions) Subscribed(ctx context.Context, clientID string, subs []persist.Subscription, removed []string) error {
	un := make([]persist.Vars, len(removed))
	for i, f := range removed {
		un[i] = persist.SubscriptionVars(clientID, persist.Subscription{Filter: f})
	}
	if err := a.run(ctx, "Subscribed", "session.unsubscribed", un); err != nil {
		return err
	}
	vars := make([]persist.Vars, len(subs))
	for i, sub := range subs {
		vars[i] = persist.SubscriptionVars(clientID, sub)
	}
	return a.run(ctx, "Subscribed", "session.subscribed", vars)
}

// Publish runs the message.publish actions for each message.
func (a *Actions) Publish(ctx context.Context, msgs ...*persist.Message) error {
	vars := make([]persist.Vars, len(msgs))
	for i, m := range msgs {
		vars[i] = persist.MessageVars(m)
	}
	return a.run(ctx, "Publish", "message.publish", vars)
}

// Retain runs the message.retain actions.
func (a *Actions) Retain(ctx context.Context, m *persist.Message) error {
	return a.run(ctx, "Retain", "message.retain", []persist.Vars{persist.MessageVars(m)})
}

// Acked runs the message.acked actions for each ack.
func (a *Actions) Acked(ctx context.Context, clientID string, acks ...persist.Ack) error {
	vars := make([]persist.Vars, len(acks))
	for i, ack := range acks {
		vars[i] = persist.AckVars(clientID, ack)
	}
	return a.run(ctx, "Acked", "message.acked", vars)
}
