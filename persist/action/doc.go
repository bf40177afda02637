// Package action runs raw actions: SQL, CQL and Redis commands written by
// the user as text with ${name} variables, run on a broker hook such as
// client.connected or message.publish (the "sql", "cql" and "commands"
// actions; see "Schema names" in package persist). Store packages use it to
// offer raw actions (sqlstore.Actions, redisstore.Actions); users of those
// stores only write the text.
//
//	insert into conn(clientid) values(${clientid})
//	HSET mqtt:sub:${clientid} ${topic} ${qos}
//
// A variable is never spliced into the text that reaches the database:
// Template.SQL turns each variable into a bind placeholder and Template.Args
// gives the values in the same order; ParseCommand splits a command into
// arguments once, when it is parsed, and Command.Args puts each value inside
// the one argument it was written in. A value such as
// "a'; DROP TABLE mqtt_msg; --" or "x\r\nFLUSHALL" therefore stays data.
//
// Variable names are letters, digits and underscores. Every variable is
// checked when the text is parsed: an unknown name is an error matching
// persist.ErrInvalid. Write $${ for a literal "${"; every other "$" is
// literal text. MessageVars, ClientVars, SubscriptionVars and AckVars give
// the variables of each event, and VarNames their names.
//
// # Hooks
//
// HookEvent maps a hook name to the persist.Event of the Store verb that
// runs it, and Hooks lists them all. HookActions is a persist.Store that
// turns the verbs into runs of hooks with their variables, so that a store's
// raw actions only say how to run the statements of one hook (RunHook).
package action
