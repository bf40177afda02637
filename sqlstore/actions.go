package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Action is raw SQL that runs on one of the seeds' hooks, such as
// {Hook: "client.connected", SQL: []string{"insert into conn(clientid) values(${clientid})"}}.
// Every ${name} becomes a bound parameter of the statement (never text of
// it); persist.VarNames lists the names each hook has.
type Action struct {
	// Hook is one of client.connected, client.disconnected,
	// session.subscribed, session.unsubscribed, message.publish,
	// message.retain and message.acked.
	Hook string
	// SQL are the statements run, in order, for each event of Hook.
	SQL []string
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

// Actions runs raw SQL actions on the store's database. It is a
// persist.Store that handles only the events its actions name (see
// Events), for a persist.Rule; the other verbs return errors matching
// persist.ErrUnsupported. All statements of one call run in one
// transaction, so a call either runs them all or none.
type Actions struct {
	persist.Unsupported
	s      *Store
	hooks  map[string][]compiled
	events persist.Event
}

type compiled struct {
	query string
	t     *persist.Template
}

// Actions compiles actions for the store's database: an unknown hook or
// ${name}, or an action without SQL, is an error matching persist.ErrInvalid
// that names the action. The Actions stop working when the store is closed.
func (s *Store) Actions(actions ...Action) (*Actions, error) {
	if len(actions) == 0 {
		return nil, s.invalid("Actions", "no actions")
	}
	a := &Actions{s: s, hooks: map[string][]compiled{}}
	for i, act := range actions {
		ev, ok := actionHooks[act.Hook]
		if !ok {
			return nil, s.invalid("Actions", "action %d: unknown hook %q (want client.connected, client.disconnected, session.subscribed, session.unsubscribed, message.publish, message.retain or message.acked)", i, act.Hook)
		}
		if len(act.SQL) == 0 {
			return nil, s.invalid("Actions", "action %d (%s): no SQL", i, act.Hook)
		}
		for j, text := range act.SQL {
			t, err := persist.ParseTemplate(text, persist.VarNames(ev)...)
			if err != nil {
				return nil, s.invalid("Actions", "action %d (%s) statement %d: %v", i, act.Hook, j, err)
			}
			placeholder := persist.PlaceholderQuestion
			if s.d.name() == "postgres" {
				placeholder = persist.PlaceholderDollar
			}
			query, _ := t.SQL(placeholder)
			a.hooks[act.Hook] = append(a.hooks[act.Hook], compiled{query: query, t: t})
		}
		a.events |= ev
	}
	return a, nil
}

// Events reports the events the actions handle.
func (a *Actions) Events() persist.Event { return a.events }

// run runs the statements of hook once per vars, all in one transaction.
func (a *Actions) run(ctx context.Context, op, hook string, vars []persist.Vars) error {
	s := a.s
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	stmts := a.hooks[hook]
	if len(stmts) == 0 || len(vars) == 0 {
		return nil
	}
	defer s.lockWrites()()
	err := s.inTx(ctx, nil, func(tx *sql.Tx) error {
		for _, v := range vars {
			for _, c := range stmts {
				args := c.t.Args(v)
				for i, arg := range args {
					if tm, ok := arg.(time.Time); ok {
						args[i] = s.d.timeArg(tm)
					}
				}
				if _, err := tx.ExecContext(ctx, c.query, args...); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return s.fail(ctx, op+"("+hook+")", err)
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

// Publish runs the message.publish actions for each message, in one
// transaction for the batch.
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
