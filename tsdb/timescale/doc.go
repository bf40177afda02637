// Package timescale writes MQTT messages to TimescaleDB (or any
// PostgreSQL) with the statements of the seeds' Timescale templates (see
// package tsdb): each template's SQL, such as
//
//	insert into sensor_data(time, location, temperature, humidity) values (NOW(), $1, $2, $3)
//
// runs once per row the template renders (one per "$0" element), with
// $1…$n bound to its param_keys — never spliced into the SQL — through
// pgx (github.com/jackc/pgx/v5, the driver the rest of the module uses).
// Every row of a Publish goes in one batch: one round trip, one implicit
// transaction. Strings, numbers, booleans and JSON values are bound as
// text, which PostgreSQL converts to the column's type (a number stays
// exact); $payload is bound as bytes (bytea, or text and jsonb for a
// textual payload); null is NULL.
//
// A Writer is a publish-only persist.Store (persist.Unsupported embedded,
// Events persist.OnPublish) and a persist.Migrator: Migrate runs
// Options.Schema (the templates only insert) and makes Options.Hypertables
// hypertables with create_hypertable when the timescaledb extension is
// installed; without it the tables stay plain PostgreSQL tables, which the
// same INSERTs fill.
//
// By URL (persist.Open, with a blank import of this package):
//
//	timescale://user:password@host:5432/database?templates=FILE&hypertable=sensor_data:time&sslmode=disable
//
// # Errors
//
// A message that does not fit a template is skipped (see package tsdb).
// An error of the database fails the batch and writes none of it: data
// errors, constraint violations and errors of the SQL match
// persist.ErrInvalid and name the message, template and row; lost
// connections, shutdowns, deadlocks and serialization failures are
// retryable. A retried batch whose commit was in fact done writes its rows
// again: a unique key on $id and ON CONFLICT DO NOTHING keep them once.
//
// # Caveats
//
// No timescaledb package exists for the test environment: the tests run
// the INSERT path on plain PostgreSQL and check that Migrate leaves the
// hypertables alone without the extension.
package timescale
