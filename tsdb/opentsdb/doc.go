// Package opentsdb writes MQTT messages to OpenTSDB as the data points of
// the seeds' OpenTSDB templates (see package tsdb): through the HTTP API's
// /api/put, with the seeds' summary, details, sync, sync_timeout and
// max_batch_size (default 20 points per request), or through the telnet
// interface's put lines.
//
// A Writer (HTTP) or TelnetWriter is a publish-only persist.Store: it
// embeds persist.Unsupported, its Events are persist.OnPublish, and a
// persist.Router or persist.Pipeline takes it like any store. Its Stats
// count messages, points and skips; OnSkip hands each skipped message to a
// handler.
//
// By URL (persist.Open, with a blank import of this package):
//
//	opentsdb://host:4242?templates=FILE&summary=true&details=false&sync=false&sync_timeout=0&max_batch_size=20
//	opentsdb+telnet://host:4242?templates=FILE
//
// # Values
//
// A data point is a metric (the template's measurement), tags, a number
// and a timestamp. OpenTSDB has no escapes and takes letters, digits and
// "-_./" in metrics and tags: any other character (a space, which would
// split a telnet line, a newline, which would start another put, '=')
// skips the message for the template (tsdb.Unwritable), as does a value
// that is not a number (tsdb.Type). A tag whose value is empty or null is
// left out. Timestamps are milliseconds over HTTP and seconds over telnet
// by default (Options.Precision): OpenTSDB takes both, but InfluxDB's
// OpenTSDB input reads millisecond timestamps wrongly, and VictoriaMetrics'
// telnet input drops them.
//
// # Errors
//
// Points the server refuses (HTTP 400, or a summary counting failed
// points) are an error of Publish matching persist.ErrInvalid, not
// retryable, with the server's message and, with Details, each refused
// point (a *ServerError); a server that cannot be reached or fails (5xx,
// 429, 404) gives a retryable error matching persist.ErrUnavailable. The
// telnet interface answers nothing but error lines, which the writer
// counts (TelnetWriter.ServerErrors); a broken connection is a retryable
// error, and the next Publish dials again.
//
// # Caveats
//
// There is no OpenTSDB server in the test environment (it needs HBase):
// the writers are tested against InfluxDB's OpenTSDB input and
// VictoriaMetrics, which both answer /api/put with 204 and no summary, and
// the reading of summaries against OpenTSDB's documented answers. Real
// OpenTSDB needs at least one tag per data point.
package opentsdb
