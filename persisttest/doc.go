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
//
// # Features
//
// A store that cannot do something declares it in Features; Run then skips
// the cases that need it and says so in the skip message, and checks that
// the store answers such a request with an error matching
// persist.ErrUnsupported. A store that does not implement a lookup interface
// (persist.ClientLookup, persist.SubscriptionLookup, persist.RetainLookup)
// without declaring it fails.
//
// # Time
//
// Times are compared as instants with a tolerance of one second, since SQL
// datetimes may keep whole seconds only. A few cases wait for a lease or an
// expiry to pass (about three seconds each); they run in parallel with the
// others.
package persisttest
