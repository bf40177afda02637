package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/action"
)

// Action is raw SQL that runs on one of the seeds' hooks, such as
// {Hook: "client.connected", SQL: []string{"insert into conn(clientid) values(${clientid})"}}.
// Every ${name} becomes a bound parameter of the statement (never text of
// it); action.VarNames lists the names each hook has.
type Action struct {
	// Hook is one of client.connected, client.disconnected,
	// session.subscribed, session.unsubscribed, message.publish,
	// message.retain and message.acked.
	Hook string
	// SQL are the statements run, in order, for each event of Hook.
	SQL []string
}

// Actions runs raw SQL actions on the store's database. It is a
// persist.Store that handles only the events its actions name (see
// Events), for a persist.Rule; the other verbs return errors matching
// persist.ErrUnsupported. All statements of one call run in one
// transaction, so a call either runs them all or none.
type Actions struct {
	*action.HookActions
	s     *Store
	hooks map[string][]compiled
}

type compiled struct {
	query string
	t     *action.Template
}

// Actions compiles actions for the store's database: an unknown hook or
// ${name}, or an action without SQL, is an error matching persist.ErrInvalid
// that names the action. The Actions stop working when the store is closed.
func (s *Store) Actions(actions ...Action) (*Actions, error) {
	if len(actions) == 0 {
		return nil, s.invalid("Actions", "no actions")
	}
	a := &Actions{s: s, hooks: map[string][]compiled{}}
	var events persist.Event
	for i, act := range actions {
		ev, err := action.HookEvent(act.Hook)
		if err != nil {
			return nil, s.invalid("Actions", "action %d: %v", i, err)
		}
		if len(act.SQL) == 0 {
			return nil, s.invalid("Actions", "action %d (%s): no SQL", i, act.Hook)
		}
		for j, text := range act.SQL {
			t, err := action.ParseTemplate(text, action.VarNames(ev)...)
			if err != nil {
				return nil, s.invalid("Actions", "action %d (%s) statement %d: %v", i, act.Hook, j, err)
			}
			placeholder := action.PlaceholderQuestion
			if s.d.name() == "postgres" {
				placeholder = action.PlaceholderDollar
			}
			query, _ := t.SQL(placeholder)
			a.hooks[act.Hook] = append(a.hooks[act.Hook], compiled{query: query, t: t})
		}
		events |= ev
	}
	a.HookActions = action.NewHookActions(events, a.run)
	return a, nil
}

// run runs the statements of hook once per vars, all in one transaction.
func (a *Actions) run(ctx context.Context, op, hook string, vars []action.Vars) error {
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
