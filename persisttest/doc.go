// Package persisttest is the conformance suite every persist.Store passes,
// and the benchmarks every store shares (like gocloud's drivertest or
// watermill's pubsub/tests).
//
// A store package calls Run from a test and Bench from a benchmark with a
// Harness that makes fresh, empty, migrated stores:
//
//	func TestConformance(t *testing.T) {
//		persisttest.Run(t, persisttest.Harness{
//			New: func(t testing.TB) persist.Store {
//				s := newStoreOnAFreshSchema(t) // registers t.Cleanup
//				return s
//			},
//		})
//	}
//
// # Cases
//
// Every case takes a fresh store from Harness.New, so cases run in parallel
// (t.Parallel) and a real server sees several stores at once. The cases
// check what a user of a broker would check: client state (also a
// disconnect from a node the client has left, arriving late), subscriptions,
// exact byte round-trips of payloads and every Message field, awkward topic
// names and client IDs (quotes, SQL and CR/LF injection, unicode, case and
// trailing-space variants), fanout cursors and subscription starts, queue
// claims, leases and exactly-once hand-out under concurrency, wildcard
// fetches, limits, time ranges and expiry, retained messages, concurrent
// use under -race, cancelled contexts, use after Close and invalid input.
// A store that is a persist.Watcher is checked as one (with two store
// values from Harness.Shared as two broker nodes): notices of publishes to
// its filters on either node with the publishing node, of every client's
// connect and disconnect, counted and shared filters, invalid ones
// refused, Close.
//
// Invalid input of every verb and lookup (client IDs, topics, filters,
// message fields, subscription options, fetch options, acks; also longer
// than the store's declared persist.Limits) must give an error matching
// persist.ErrInvalid that is not retryable, names each package once
// ("<store>: <Op> <what>: <cause>"), and changes nothing: the suite reads
// back what the store holds after each refused call where it can.
//
// # Capabilities
//
// The suite finds out what a store does from the store itself, as the
// Router does: its companion interfaces by type assertion
// (persist.ClientLookup, persist.SubscriptionLookup, persist.RetainLookup,
// persist.Pinger, persist.Closer, persist.Limiter, persist.Watcher) and the verbs it
// handles by its declared events (persist.EventSupporter; without it, all
// of them). A case that needs what the store lacks is skipped and says
// why; a verb whose event the store does not handle must return an error
// matching persist.ErrUnsupported. Only what a store cannot tell — that it
// keeps one message mode only — is declared in Features.
//
// # Write-only stores
//
// A store whose Events leave out persist.OnFetch (a time-series writer,
// say) cannot be read through the Store interface. Its harness sets
// Harness.ReadBack to return what the store wrote, read from its database
// directly, and the suite runs every case that applies to a writer through
// it: exact round trips of payloads, fields and awkward topics, batches,
// idempotence, expired messages, invalid input, cancelled contexts, use
// after Close and concurrent publishers. Features.Drops names the fields
// such a store does not keep.
//
// # Time
//
// Times are compared as instants with a tolerance of one second, since SQL
// datetimes may keep whole seconds only. A few cases wait for a lease or an
// expiry to pass (about three seconds each); they run in parallel with the
// others.
package persisttest
