package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/action"
)

// Action is a list of raw Redis commands that run on one of the seeds'
// hooks, such as {Hook: "client.connected", Commands: []string{"SET conn:${clientid} ${clientid}"}}.
// A command is split into arguments at spaces when it is compiled
// (action.ParseCommand: double quotes group an argument with spaces);
// each ${name} is then replaced inside its one argument, so a value with
// spaces, quotes or CR LF never becomes another argument or command.
// action.VarNames lists the names each hook has.
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

// Actions runs raw Redis command actions through the store's client. It is
// a persist.Store that handles only the events its actions name (see
// Events), for a persist.Rule; the other verbs return errors matching
// persist.ErrUnsupported.
type Actions struct {
	*action.HookActions
	s     *Store
	hooks map[string][]compiledAction
}

type compiledAction struct {
	cmds     []*action.Command
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
	var events persist.Event
	for i, act := range actions {
		ev, err := action.HookEvent(act.Hook)
		if err != nil {
			return nil, invalid(op, "action %d: %v", i, err)
		}
		if len(act.Commands) == 0 {
			return nil, invalid(op, "action %d (%s): no commands", i, act.Hook)
		}
		ca := compiledAction{pipeline: act.Pipeline}
		for j, text := range act.Commands {
			c, err := action.ParseCommand(text, action.VarNames(ev)...)
			if err != nil {
				return nil, invalid(op, "action %d (%s) command %d: %v", i, act.Hook, j, err)
			}
			ca.cmds = append(ca.cmds, c)
		}
		a.hooks[act.Hook] = append(a.hooks[act.Hook], ca)
		events |= ev
	}
	a.HookActions = action.NewHookActions(events, a.run)
	return a, nil
}

// args returns the arguments of c for vars, as go-redis takes them.
func args(c *action.Command, vars action.Vars) []any {
	strs := c.Args(vars)
	out := make([]any, len(strs))
	for i, s := range strs {
		out[i] = s
	}
	return out
}

// run runs the actions of hook once per vars.
func (a *Actions) run(ctx context.Context, op, hook string, vars []action.Vars) error {
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
