// Package mochi makes a github.com/mochi-mqtt/server/v2 broker remember:
// it registers a persist.Store (normally a *persist.Router) as a mochi hook
// that keeps client state, subscriptions, messages for offline delivery,
// retained messages and acks in the store, and delivers stored messages to
// the clients that missed them — after a reconnect, a broker restart, or on
// another broker node that shares the database.
//
//	server := mqtt.New(nil)
//	h := mochi.New(server, router, &mochi.Options{Node: "node-1"})
//	if err := server.AddHook(h, nil); err != nil { … }
package mochi
