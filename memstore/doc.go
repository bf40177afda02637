// Package memstore is a persist.Store that keeps everything in memory: the
// reference store of this module.
//
// It is for two kinds of users:
//
//   - people testing broker code — a persist.Router, the mochi adapter
//     (persist/mochi), hooks of their own — without a database: a Store
//     behaves as every store of this module does, with the same semantics
//     and the same errors, and forgets everything when it is dropped;
//   - people writing a store: it is the executable spec of the
//     persist.Store contract, the shortest code that passes persisttest.
//     It is built on persist/storekit like every store, so what it does
//     beyond calling the kit (client state, subscription starts, fanout
//     cursors, queue claims with leases, retained messages) is exactly
//     what a database has to do.
//
// New returns an empty store; NewWithOptions one that keeps no more than
// the Limits of the database it stands in for. Messages returns what was
// stored, for tests that check what a broker wrote.
//
// # Semantics
//
// Those of persist.Store and its companions, all of which a Store
// implements (persist.ClientLookup, persist.SubscriptionLookup,
// persist.RetainLookup, persist.Pinger, persist.Closer, persist.Limiter).
// Client IDs, topics and filters are compared byte for byte. Every call
// holds one lock for the whole store, so each is atomic: a queue claim is
// never handed out twice, and a disconnect from a node the client has
// left is decided with its write.
//
// # Errors
//
// Errors come from storekit, as every store's do: a done context's error
// as is, persist.ErrClosed after Close, persist.ErrInvalid for bad input
// (with a message such as `memstore: FetchOffline client "c": topic
// filter "a/#/b": …`), persist.ErrNotFound from Client. A Store never
// fails otherwise and none of its errors is retryable.
//
// # Caveats
//
// Nothing survives the process. Messages stay in memory until they are
// consumed (queue) or found expired by a read; fanout messages without an
// expiry stay for good. Not meant for production use.
package memstore
