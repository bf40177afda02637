// Package tsdb maps MQTT messages to time-series points through the seeds'
// JSON template files (the emqx_backend_influxdb.tmpl,
// emqx_backend_opentsdb.tmpl and emqx_backend_timescale.tmpl format), and
// its sub-packages write the points: tsdb/influxdb (line protocol over
// HTTP, 1.x and 2.x APIs, and UDP), tsdb/opentsdb (HTTP /api/put and
// telnet put) and tsdb/timescale (PostgreSQL INSERTs). Each writer is a
// publish-only persist.Store: a persist.Router rule or a persist.Pipeline
// takes it like any store, so durable and async modes, batching, retries
// and the on-disk outbox apply to it too.
//
//	set, err := tsdb.LoadInflux("emqx_backend_influxdb.tmpl")
//	w, err := influxdb.New("http://localhost:8086", set, &influxdb.Options{Database: "mqtt"})
//	router, err := persist.NewRouter(persist.Rule{Name: "tsdb", Filter: "sensor/#", Store: w, QoS0: true})
//
// or by URL, with the templates file as a parameter:
//
//	w, err := persist.Open(ctx, "influxdb://localhost:8086/mqtt?templates=emqx_backend_influxdb.tmpl")
//
// # Template files
//
// A file is a JSON object from topic filters (wildcards allowed) to
// templates. Several templates may match one topic: through overlapping
// filters, a key given twice, or an array of templates as a key's value;
// each one that matches renders the message, in file order.
//
//	{
//	    "sample": {
//	        "measurement": "$topic",
//	        "tags": {
//	            "host": ["$payload", "data", "$0", "host"],
//	            "qos": "$qos",
//	            "clientid": "$clientid"
//	        },
//	        "fields": {"temperature": ["$payload", "data", "$0", "temp"]},
//	        "timestamp": "$timestamp"
//	    }
//	}
//
// The templates are InfluxDB's {measurement, tags, fields, timestamp}
// (measurement and fields required), OpenTSDB's {measurement, tags, value,
// timestamp} (measurement and value required) and Timescale's {name, sql,
// param_keys} (all required; names differ; the SQL's $1…$n are bound to
// param_keys in order, never spliced into the SQL, and each $n must be
// used). A file is checked when it is loaded: a key a template does not
// have, a missing one, an unknown placeholder, a bad path, a tag key the
// database refuses or SQL that does not use its parameters is a
// TemplateError naming the file, the topic key, the template's position
// and the value, such as
//
//	tsdb: templates.json: topic "sample" (template 1): tags.host: line 4: path ["payload", "host"] starts with "payload" (a payload path starts with "$payload")
//
// # Values
//
// Every value in a template is one of:
//
//   - a fixed value: a string not starting with '$', a number, true,
//     false or null;
//   - a placeholder: $id (the message ID), $clientid, $username,
//     $peerhost, $qos (an integer), $topic, $timestamp (an integer: when
//     the broker received the message, in nanoseconds, or in the writer's
//     precision where it is a point's timestamp) and $payload (the payload
//     as it is, any bytes: a string field in InfluxDB, bytes for
//     PostgreSQL);
//   - a payload path: ["$payload", key, …] reads the payload as JSON and
//     takes the value at the keys; "$N" takes the N-th element of an array
//     (from 1) and "$0" every element: the template then makes one point
//     (or row) per element. All the "$0" paths of a template must find
//     arrays of the same length. ["$payload"] alone is the payload's JSON
//     value (a number stays a number).
//
// Values keep their JSON type: numbers stay numbers (written as the
// publisher wrote them, so InfluxDB gets temperature=1, a float field, not
// the seeds' temperature="1"), strings stay strings, booleans booleans;
// $qos and $timestamp are integers (InfluxDB's 2i). An object or array is
// its JSON text. InfluxDB and OpenTSDB have no empty tag: a tag whose
// value is null or "" is left out, as is an InfluxDB field that is null.
//
// # Skips
//
// A message that does not fit a template is skipped for that template
// (other templates still write it), never half written: the payload is not
// JSON, a path finds nothing, the "$0" arrays differ in length, a value has
// a type its place cannot take (a string as an OpenTSDB value), or the
// protocol cannot carry it (a newline in an InfluxDB tag, a space in an
// OpenTSDB tag: OpenTSDB has no escapes). Each skip is counted by Reason
// in the writer's Stats and handed to its OnSkip handler (a program logs
// it there); it is not an error of Publish, so the broker still delivers
// the message. Errors of the database (a type conflict, a point it
// refuses) are Publish's errors.
//
// # Escaping
//
// Every value a message brings is escaped for its place, so that it lands
// as data: line protocol's backslash escapes of commas, spaces and '=' in
// measurements, tags and field keys, and of quotes and backslashes in
// string fields (which keep newlines); OpenTSDB's metrics and tags are
// checked against the characters it takes; Timescale's values are bound.
// What a protocol cannot carry is a skip (Unwritable), not a corrupted
// line.
//
// # Caveats
//
// InfluxDB 1.x reads a backslash in a tag or measurement literally unless
// a comma, space or '=' follows, so there a run of backslashes before one
// of those (or at the end) cannot be written; the 2.x protocol escapes the
// backslash itself (see LineOptions.V2). The placeholders hold what the
// broker adapter puts into persist.Message (From, Username, PeerHost).
package tsdb
