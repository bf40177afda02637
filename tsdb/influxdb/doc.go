// Package influxdb writes MQTT messages to InfluxDB as the points of the
// seeds' InfluxDB templates (see package tsdb): over HTTP through the 1.x
// /write API (database, retention policy, precision, user and password) or
// the 2.x /api/v2/write API (org, bucket, token; InfluxDB 2.x and 3.x,
// VictoriaMetrics), and over UDP to InfluxDB's UDP listener.
//
// A Writer (HTTP) or UDPWriter is a publish-only persist.Store: it embeds
// persist.Unsupported, its Events are persist.OnPublish, and a
// persist.Router or persist.Pipeline takes it like any store, so a rule
// decides which topics reach it, and durable and async modes, batching,
// retries and the on-disk outbox apply. It renders the points of every
// template matching a message's topic and sends them in batches
// (Options.BatchSize points per request). Its Stats count messages,
// points and skips, and OnSkip hands each skipped message to a handler.
//
// By URL (persist.Open, with a blank import of this package):
//
//	influxdb://[user:password@]host:8086/database?templates=FILE[&rp=…&precision=ms]
//	influxdb2://host:8086/bucket?templates=FILE&org=…&token=…
//	influxdb+udp://host:8089?templates=FILE
//
// # Errors
//
// A message that does not fit a template (see package tsdb) is skipped and
// is not an error. The server refusing points — a line it cannot parse, a
// field whose type conflicts with the stored one — answers HTTP 400
// ("partial write: …"); InfluxDB writes the request's other points, and
// Publish returns an error matching persist.ErrInvalid that is not
// retryable, with the server's message (a *ServerError). A Pipeline then
// writes the batch message by message, so the message at fault is the one
// refused (points written twice replace themselves: same series, same
// time). A server that cannot be reached, fails (5xx), is overloaded
// (429), has no such database (404) or refuses the credentials (401, 403)
// gives a retryable error matching persist.ErrUnavailable: an async
// pipeline keeps the messages in its outbox until the server takes them.
//
// # Caveats
//
// UDP has no answers: a point InfluxDB refuses, or a datagram lost (a
// burst larger than the server's socket buffer), is not seen; the UDP
// listener's configuration names the database and the precision. A point
// that does not fit in a datagram (Options.MaxPacket) is skipped
// (tsdb.TooLarge). InfluxDB 1.x reads backslashes in tags literally (see
// package tsdb). InfluxDB's documented limit for a string field is 64 KB.
package influxdb
