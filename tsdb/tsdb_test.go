package tsdb_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
)

// The seeds' sample template files, as examples/tsdb ships them.
const (
	influxFile    = "../examples/tsdb/emqx_backend_influxdb.tmpl"
	opentsdbFile  = "../examples/tsdb/emqx_backend_opentsdb.tmpl"
	timescaleFile = "../examples/tsdb/emqx_backend_timescale.tmpl"
)

// samplePayload is the seeds' payload of the InfluxDB and OpenTSDB
// examples.
const samplePayload = `{
    "data": [
        {
            "temp": 1,
            "host": "serverA",
            "region": "hangzhou"
        },
        {
            "temp": 2,
            "host": "serverB",
            "region": "ningbo"
        }
    ]
}`

// sensorPayload is the seeds' payload of the Timescale example.
const sensorPayload = `{
    "data":[
        {"location":"bedroom", "temperature":21.3, "humidity":40.3},
        {"location":"bathroom", "temperature":22.3, "humidity":61.8},
        {"location":"kitchen", "temperature":29.5, "humidity":58.7}
    ]
}`

// seedTime is the seeds' timestamp, 1560745505429670000 ns.
var seedTime = time.Unix(0, 1560745505429670000)

func msg(topic, payload string) *persist.Message {
	return &persist.Message{ID: persist.NewID(), Topic: topic, Payload: []byte(payload), QoS: 0,
		From: "mqttjs_6990f0e886", Time: seedTime}
}

// lines renders every template of set matching m's topic as line protocol.
func lines(t testing.TB, set *tsdb.Set[tsdb.Influx], m *persist.Message, o *tsdb.LineOptions) (string, []error) {
	t.Helper()
	s := tsdb.GetScope()
	defer tsdb.PutScope(s)
	s.Reset(m)
	var out []byte
	var errs []error
	set.Each(m.Topic, func(_ int, tm *tsdb.Influx) {
		var err error
		if out, _, err = tm.AppendLines(out, s, o, nil); err != nil {
			errs = append(errs, err)
		}
	})
	return string(out), errs
}

// TestInfluxSeedExample: the seeds' InfluxDB example, with the types kept
// (temperature=1, not temperature="1").
func TestInfluxSeedExample(t *testing.T) {
	set, err := tsdb.LoadInflux(influxFile)
	if err != nil {
		t.Fatal(err)
	}
	got, errs := lines(t, set, msg("sample", samplePayload), &tsdb.LineOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	want := "sample,clientid=mqttjs_6990f0e886,host=serverA,qos=0,region=hangzhou temperature=1 1560745505429670000\n" +
		"sample,clientid=mqttjs_6990f0e886,host=serverB,qos=0,region=ningbo temperature=2 1560745505429670000\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Other topics have no template.
	if got, _ := lines(t, set, msg("other", samplePayload), &tsdb.LineOptions{}); got != "" {
		t.Errorf("topic other: %q", got)
	}
}

func TestInfluxPrecision(t *testing.T) {
	set, err := tsdb.LoadInflux(influxFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		prec time.Duration
		ts   string
	}{
		{time.Nanosecond, "1560745505429670000"},
		{time.Microsecond, "1560745505429670"},
		{time.Millisecond, "1560745505429"},
		{time.Second, "1560745505"},
		{time.Minute, "26012425"},
	} {
		got, errs := lines(t, set, msg("sample", samplePayload), &tsdb.LineOptions{Precision: c.prec})
		if errs != nil {
			t.Fatal(errs)
		}
		if !strings.HasSuffix(strings.SplitN(got, "\n", 2)[0], " "+c.ts) {
			t.Errorf("precision %v: %q, want timestamp %s", c.prec, got, c.ts)
		}
	}
}

// TestInfluxTypes: JSON types are kept; the integer placeholders are
// integers; the payload's own strings are strings.
func TestInfluxTypes(t *testing.T) {
	set, err := tsdb.ParseInflux("types.json", []byte(`{"t/#": {
		"measurement": "m",
		"tags": {"topic": "$topic", "n": ["$payload", "n"], "b": ["$payload", "b"], "fixed": 7},
		"fields": {"n": ["$payload", "n"], "f": ["$payload", "f"], "e": ["$payload", "e"], "s": ["$payload", "s"],
			"b": ["$payload", "b"], "o": ["$payload", "o"], "q": "$qos", "ts": "$timestamp", "raw": "$payload",
			"null": ["$payload", "z"], "whole": ["$payload"], "fs": "fixed", "fn": 2.50}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := msg("t/1", `{"n": 1, "f": -21.50, "e": 1E3, "s": "x\"y\\z", "b": true, "o": {"a": [1, 2]}, "z": null}`)
	m.QoS = 2
	got, errs := lines(t, set, m, &tsdb.LineOptions{ServerTime: true})
	if errs != nil {
		t.Fatal(errs)
	}
	want := `m,b=true,fixed=7,n=1,topic=t/1 ` +
		`b=true,e=1E3,f=-21.50,fn=2.50,fs="fixed",n=1,o="{\"a\": [1, 2]}",q=2i,` +
		`raw="{\"n\": 1, \"f\": -21.50, \"e\": 1E3, \"s\": \"x\\\"y\\\\z\", \"b\": true, \"o\": {\"a\": [1, 2]}, \"z\": null}",` +
		`s="x\"y\\z",ts=1560745505429670000i,` +
		`whole="{\"n\": 1, \"f\": -21.50, \"e\": 1E3, \"s\": \"x\\\"y\\\\z\", \"b\": true, \"o\": {\"a\": [1, 2]}, \"z\": null}"` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestInfluxEscaping: hostile values land as data. These are the strings
// InfluxDB reads back as they are (see the writer's tests against the
// server).
func TestInfluxEscaping(t *testing.T) {
	set, err := tsdb.ParseInflux("esc.json", []byte(`{"#": {
		"measurement": ["$payload", "m"],
		"tags": {"tag key, with=specials": ["$payload", "t"], "client": "$clientid"},
		"fields": {"field key, with=specials": ["$payload", "f"]}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := msg("a b", `{"m": "m e,a=s", "t": "t a,g=v\\al", "f": "f\"i\\e\nld, =x"}`)
	m.From = `c l,i=e"nt`
	for _, c := range []struct {
		v2   bool
		want string
	}{
		{false, `m\ e\,a=s,client=c\ l\,i\=e"nt,tag\ key\,\ with\=specials=t\ a\,g\=v\al field\ key\,\ with\=specials="f\"i\\e` + "\n" + `ld, =x"` + "\n"},
		{true, `m\ e\,a=s,client=c\ l\,i\=e"nt,tag\ key\,\ with\=specials=t\ a\,g\=v\\al field\ key\,\ with\=specials="f\"i\\e` + "\n" + `ld, =x"` + "\n"},
	} {
		got, errs := lines(t, set, m, &tsdb.LineOptions{ServerTime: true, V2: c.v2})
		if errs != nil {
			t.Fatal(errs)
		}
		if got != c.want {
			t.Errorf("V2 %v: got\n%s\nwant\n%s", c.v2, got, c.want)
		}
	}
}

// TestInfluxUnwritable: what line protocol cannot carry skips the message
// for the template, with a reason; nothing of it is written.
func TestInfluxUnwritable(t *testing.T) {
	set, err := tsdb.ParseInflux("u.json", []byte(`{"#": {
		"measurement": ["$payload", "m"],
		"tags": {"t": ["$payload", "data", "$0", "t"]},
		"fields": {"f": ["$payload", "data", "$0", "f"]}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, payload string
		v2            bool
		reason        tsdb.Reason
		want          string // in the error
	}{
		{"newline in a tag", `{"m":"m","data":[{"t":"ok","f":1},{"t":"a\nb","f":2}]}`, false, tsdb.Unwritable, "newline"},
		{"newline in a tag, 2.x", `{"m":"m","data":[{"t":"a\rb","f":1}]}`, true, tsdb.Unwritable, "newline"},
		{"trailing backslash", `{"m":"m","data":[{"t":"a\\","f":1}]}`, false, tsdb.Unwritable, "trailing backslash"},
		{"backslash before a comma", `{"m":"m","data":[{"t":"a\\\\,b","f":1}]}`, false, tsdb.Unwritable, `before ','`},
		{"comment", `{"m":"#m","data":[{"t":"a","f":1}]}`, false, tsdb.Unwritable, "comment"},
		{"empty measurement", `{"m":"","data":[{"t":"a","f":1}]}`, false, tsdb.Empty, "empty"},
		{"all fields null", `{"m":"m","data":[{"t":"a","f":null}]}`, false, tsdb.Empty, "no field"},
		{"huge number", `{"m":"m","data":[{"t":"a","f":1e999}]}`, false, tsdb.Type, "range"},
		{"not JSON", `{"m":`, false, tsdb.NotJSON, "not JSON"},
		{"missing key", `{"m":"m","data":[{"t":"a","f":1},{"t":"b"}]}`, false, tsdb.Missing, `"data"[element 2] has no key "f"`},
		{"not an array", `{"m":"m","data":{"t":"a","f":1}}`, false, tsdb.Missing, "not an array"},
		{"empty array", `{"m":"m","data":[]}`, false, tsdb.Empty, "empty array"},
	} {
		got, errs := lines(t, set, msg("x", c.payload), &tsdb.LineOptions{V2: c.v2})
		if got != "" {
			t.Errorf("%s: wrote %q", c.name, got)
		}
		if len(errs) != 1 {
			t.Errorf("%s: errors %v, want one", c.name, errs)
			continue
		}
		err := errs[0]
		if r := tsdb.ReasonOf(err); r != c.reason || !errors.Is(err, persist.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (reason %v), want reason %v, matching ErrInvalid, saying %q", c.name, err, r, c.reason, c.want)
		}
	}
	// A backslash InfluxDB 1.x keeps: in the middle, before a letter or
	// another backslash.
	got, errs := lines(t, set, msg("x", `{"m":"m\\x","data":[{"t":"C:\\temp\\\\x","f":1}]}`), &tsdb.LineOptions{ServerTime: true})
	if errs != nil || got != `m\x,t=C:\temp\\x f=1`+"\n" {
		t.Errorf("backslashes: %q, %v", got, errs)
	}
}

// TestLengths: $0 paths of unequal lengths skip the message for the
// template.
func TestLengths(t *testing.T) {
	set, err := tsdb.ParseInflux("l.json", []byte(`{"#": {"measurement": "m",
		"tags": {"a": ["$payload", "a", "$0"]}, "fields": {"b": ["$payload", "b", "$0", "v"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, errs := lines(t, set, msg("x", `{"a": ["x", "y", "z"], "b": [{"v": 1}, {"v": 2}]}`), &tsdb.LineOptions{})
	if len(errs) != 1 || tsdb.ReasonOf(errs[0]) != tsdb.Lengths || !strings.Contains(errs[0].Error(), "gives 2 values") {
		t.Fatalf("errors %v", errs)
	}
	got, errs := lines(t, set, msg("x", `{"a": ["x", "y"], "b": [{"v": 1}, {"v": 2}]}`), &tsdb.LineOptions{ServerTime: true})
	if errs != nil || got != "m,a=x b=1\nm,a=y b=2\n" {
		t.Fatalf("%q %v", got, errs)
	}
}

// TestPositions: $N takes the N-th element (1-based), with or without $0
// elsewhere.
func TestPositions(t *testing.T) {
	set, err := tsdb.ParseInflux("p.json", []byte(`{"#": {"measurement": "m",
		"tags": {"first": ["$payload", "$1", "temp"], "all": ["$payload", "$0", "temp"]},
		"fields": {"second": ["$payload", "$2", "temp"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, errs := lines(t, set, msg("x", `[{"temp": 20}, {"temp": 21}]`), &tsdb.LineOptions{ServerTime: true})
	if errs != nil || got != "m,all=20,first=20 second=21\nm,all=21,first=20 second=21\n" {
		t.Fatalf("%q %v", got, errs)
	}
	_, errs = lines(t, set, msg("x", `[{"temp": 20}]`), &tsdb.LineOptions{})
	if len(errs) != 1 || tsdb.ReasonOf(errs[0]) != tsdb.Missing || !strings.Contains(errs[0].Error(), "has 1 elements, no $2") {
		t.Fatalf("errors %v", errs)
	}
}

// TestSeveralTemplates: several templates for one topic (overlapping
// filters, an array of templates, a key given twice) each write, in file
// order; a skip of one does not stop the others.
func TestSeveralTemplates(t *testing.T) {
	set, err := tsdb.ParseInflux("several.json", []byte(`{
		"sensor/#": {"measurement": "a", "fields": {"v": ["$payload", "v"]}},
		"sensor/+": [
			{"measurement": "b", "fields": {"v": ["$payload", "v"]}},
			{"measurement": "c", "fields": {"w": ["$payload", "w"]}}
		],
		"sensor/1": {"measurement": "d", "fields": {"v": "$qos"}},
		"sensor/#": {"measurement": "e", "fields": {"v": true}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 5 {
		t.Fatalf("Len %d", set.Len())
	}
	got, errs := lines(t, set, msg("sensor/1", `{"v": 5}`), &tsdb.LineOptions{ServerTime: true})
	if got != "a v=5\nb v=5\nd v=0i\ne v=true\n" {
		t.Errorf("got %q", got)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `no key "w"`) {
		t.Errorf("errors %v", errs)
	}
	got, _ = lines(t, set, msg("sensor/1/x", `{"v": 5}`), &tsdb.LineOptions{ServerTime: true})
	if got != "a v=5\ne v=true\n" {
		t.Errorf("sensor/1/x: %q", got)
	}
	// [MQTT-4.7.2-1]: "#" does not match $ topics.
	set2, err := tsdb.ParseInflux("dollar.json", []byte(`{"#": {"measurement": "a", "fields": {"v": 1}}, "$SYS/#": {"measurement": "s", "fields": {"v": 1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := lines(t, set2, msg("$SYS/x", `{}`), &tsdb.LineOptions{ServerTime: true}); got != "s v=1\n" {
		t.Errorf("$SYS/x: %q", got)
	}
}

// TestTimestamps: a payload timestamp is an integer (in the writer's
// precision) or an RFC 3339 time; anything else skips.
func TestTimestamps(t *testing.T) {
	set, err := tsdb.ParseInflux("ts.json", []byte(`{"#": {"measurement": "m", "fields": {"v": 1}, "timestamp": ["$payload", "ts"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		payload string
		prec    time.Duration
		want    string
		reason  tsdb.Reason
	}{
		{`{"ts": 1700000000123}`, time.Millisecond, "m v=1 1700000000123\n", 0},
		{`{"ts": "2023-11-14T22:13:20.5Z"}`, time.Millisecond, "m v=1 1700000000500\n", 0},
		{`{"ts": "2023-11-14T22:13:20.5Z"}`, 0, "m v=1 1700000000500000000\n", 0},
		{`{"ts": 1.5}`, 0, "", tsdb.Type},
		{`{"ts": "yesterday"}`, 0, "", tsdb.Type},
		{`{"ts": true}`, 0, "", tsdb.Type},
		{`{"ts": null}`, 0, "", tsdb.Type},
	} {
		got, errs := lines(t, set, msg("x", c.payload), &tsdb.LineOptions{Precision: c.prec})
		if got != c.want || (c.reason != 0) != (len(errs) == 1) || c.reason != 0 && tsdb.ReasonOf(errs[0]) != c.reason {
			t.Errorf("%s: %q %v", c.payload, got, errs)
		}
	}
}

// TestOpenTSDBSeedExample: the seeds' OpenTSDB example makes two data
// points, as telnet puts and as /api/put JSON.
func TestOpenTSDBSeedExample(t *testing.T) {
	set, err := tsdb.LoadOpenTSDB(opentsdbFile)
	if err != nil {
		t.Fatal(err)
	}
	m := msg("sample", samplePayload)
	s := tsdb.GetScope()
	defer tsdb.PutScope(s)
	s.Reset(m)
	var puts, js []byte
	var ends []int
	set.Each(m.Topic, func(_ int, tm *tsdb.OpenTSDB) {
		if puts, ends, err = tm.AppendPuts(puts, s, &tsdb.PointOptions{}, ends); err != nil {
			t.Fatal(err)
		}
		if js, _, err = tm.AppendJSON(js, s, &tsdb.PointOptions{Precision: time.Millisecond}, nil); err != nil {
			t.Fatal(err)
		}
	})
	want := "put sample 1560745505 1 clientid=mqttjs_6990f0e886 host=serverA qos=0 region=hangzhou\n" +
		"put sample 1560745505 2 clientid=mqttjs_6990f0e886 host=serverB qos=0 region=ningbo\n"
	if string(puts) != want || len(ends) != 2 || ends[0] != strings.Index(want, "\n")+1 {
		t.Errorf("puts %q (ends %v), want %q", puts, ends, want)
	}
	wantJSON := `{"metric":"sample","timestamp":1560745505429,"value":1,"tags":{"clientid":"mqttjs_6990f0e886","host":"serverA","qos":"0","region":"hangzhou"}},` +
		`{"metric":"sample","timestamp":1560745505429,"value":2,"tags":{"clientid":"mqttjs_6990f0e886","host":"serverB","qos":"0","region":"ningbo"}},`
	if string(js) != wantJSON {
		t.Errorf("JSON %s, want %s", js, wantJSON)
	}
}

func TestOpenTSDBRefuses(t *testing.T) {
	set, err := tsdb.ParseOpenTSDB("o.json", []byte(`{"#": {"measurement": ["$payload", "m"], "tags": {"host": ["$payload", "h"]}, "value": ["$payload", "v"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		payload string
		reason  tsdb.Reason
		want    string
	}{
		{`{"m": "cpu", "h": "a b", "v": 1}`, tsdb.Unwritable, `not ' '`},
		{`{"m": "cpu", "h": "a\nput x 1 2 h=evil", "v": 1}`, tsdb.Unwritable, `not '\n'`},
		{`{"m": "c=pu", "h": "a", "v": 1}`, tsdb.Unwritable, `not '='`},
		{`{"m": "cpu", "h": "a", "v": "1"}`, tsdb.Type, "numbers only"},
		{`{"m": "cpu", "h": "a", "v": true}`, tsdb.Type, "numbers only"},
		{`{"m": "cpu", "h": "a", "v": null}`, tsdb.Type, "numbers only"},
		{`{"m": "cpu", "h": "a"}`, tsdb.Missing, `no key "v"`},
	} {
		s := tsdb.GetScope()
		s.Reset(msg("x", c.payload))
		var out []byte
		set.Each("x", func(_ int, tm *tsdb.OpenTSDB) { out, _, err = tm.AppendPuts(out, s, &tsdb.PointOptions{}, nil) })
		tsdb.PutScope(s)
		if len(out) != 0 || tsdb.ReasonOf(err) != c.reason || !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("%s: %q, %v (want reason %v saying %q)", c.payload, out, err, c.reason, c.want)
		}
	}
	// Unicode letters are OpenTSDB tag characters.
	s := tsdb.GetScope()
	defer tsdb.PutScope(s)
	s.Reset(msg("x", `{"m": "温度/室内", "h": "Zürich-1.a_b", "v": -2.5}`))
	var out []byte
	set.Each("x", func(_ int, tm *tsdb.OpenTSDB) { out, _, err = tm.AppendPuts(out, s, &tsdb.PointOptions{}, nil) })
	if err != nil || string(out) != "put 温度/室内 1560745505 -2.5 host=Zürich-1.a_b\n" {
		t.Errorf("%q %v", out, err)
	}
}

// TestTimescaleSeedExample: the seeds' sensor_data template makes the
// three rows bedroom, bathroom, kitchen; sensor_data2/# one row; easy_data
// binds the payload itself.
func TestTimescaleSeedExample(t *testing.T) {
	set, err := tsdb.LoadTimescale(timescaleFile)
	if err != nil {
		t.Fatal(err)
	}
	rows := func(topic, payload string) ([][]any, []string) {
		s := tsdb.GetScope()
		defer tsdb.PutScope(s)
		s.Reset(msg(topic, payload))
		var rows [][]any
		var names []string
		set.Each(topic, func(_ int, tm *tsdb.Timescale) {
			if rows, err = tm.AppendRows(rows, s); err != nil {
				t.Fatal(err)
			}
			names = append(names, tm.Name)
		})
		return rows, names
	}
	got, names := rows("sensor_data", sensorPayload)
	want := [][]any{{"bedroom", "21.3", "40.3"}, {"bathroom", "22.3", "61.8"}, {"kitchen", "29.5", "58.7"}}
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(names) != "[insert_sensor_data]" {
		t.Errorf("sensor_data: %v %v", got, names)
	}
	got, names = rows("sensor_data2/kitchen", `{"location": "kitchen", "temperature": 29.5, "humidity": 58.7}`)
	if fmt.Sprint(got) != "[[kitchen 29.5 58.7]]" || fmt.Sprint(names) != "[insert_sensor_data2]" {
		t.Errorf("sensor_data2: %v %v", got, names)
	}
	got, _ = rows("easy_data", `{"any": "json"}`)
	if len(got) != 1 || string(got[0][0].([]byte)) != `{"any": "json"}` {
		t.Errorf("easy_data: %v", got)
	}
}

// TestLoadErrors: a template file that does not load names the file, the
// template and the value.
func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		kind, name, body, want string
	}{
		{"influx", "syntax.json", `{"a": {"measurement": "m",}}`, `tsdb: syntax.json: not JSON: line 1 (byte 26): expected a string key`},
		{"influx", "array.json", `[]`, `tsdb: array.json: the file holds an array; want an object`},
		{"influx", "empty.json", `{}`, `tsdb: empty.json: no template`},
		{"influx", "filter.json", `{"a/#/b": {}}`, `tsdb: filter.json: line 1: key "a/#/b" is not a topic filter`},
		{"influx", "shared.json", `{"$share/g/a": {}}`, `is a shared subscription`},
		{"influx", "notobj.json", `{"a": 1}`, `tsdb: notobj.json: topic "a" (template 1): line 1: the template is a number; want an object`},
		{"influx", "typo.json", `{"a": {"measurement": "m", "field": {}}}`, `topic "a" (template 1): line 1: unknown key "field"`},
		{"influx", "nofields.json", "{\"a\": {\"measurement\": \"m\"},\n \"b\": {}}", `topic "a" (template 1): fields: missing`},
		{"influx", "zerofields.json", `{"a": {"measurement": "m", "fields": {}}}`, `fields: no field`},
		{"influx", "placeholder.json", `{"a": {"measurement": "m", "fields": {"v": "$temp"}}}`, `topic "a" (template 1): fields.v: line 1: "$temp" is not a placeholder`},
		{"influx", "path.json", "{\"a\": {\"measurement\": \"m\",\n\"tags\": {\"host\": [\"payload\", \"h\"]}, \"fields\": {\"v\": 1}}}", `topic "a" (template 1): tags.host: line 2: path ["payload", "h"] starts with "payload"`},
		{"influx", "path0.json", `{"a": {"measurement": "m", "fields": {"v": ["$payload", "$0", "$0"]}}}`, `takes "$0" twice`},
		{"influx", "pathnum.json", `{"a": {"measurement": "m", "fields": {"v": ["$payload", 1]}}}`, `element 2 is 1, not a string`},
		{"influx", "obj.json", `{"a": {"measurement": {"x": 1}, "fields": {"v": 1}}}`, `measurement: line 1: an object is not a template value`},
		{"influx", "time.json", `{"a": {"measurement": "m", "fields": {"time": 1}}}`, `fields.time: line 1: key "time": InfluxDB refuses "time"`},
		{"influx", "key.json", `{"a": {"measurement": "m", "fields": {"a\nb": 1}}}`, `newline`},
		{"influx", "second.json", `{"a": {"measurement": "m", "fields": {"v": 1}}, "b": [{"measurement": "m", "fields": {"v": 1}}, {"measurement": "m", "fields": {"v": "$nope"}}]}`, `topic "b" (template 3): fields.v`},
		{"opentsdb", "novalue.json", `{"a": {"measurement": "m"}}`, `topic "a" (template 1): value: missing`},
		{"opentsdb", "tagkey.json", `{"a": {"measurement": "m", "tags": {"a b": 1}, "value": 1}}`, `tags.a b: line 1: key "a b": OpenTSDB takes letters, digits and -_./ only, not ' '`},
		{"timescale", "noname.json", `{"a": {"sql": "insert into t values ($1)", "param_keys": ["$id"]}}`, `topic "a" (template 1): name: missing`},
		{"timescale", "dupname.json", `{"a": {"name": "n", "sql": "insert into t values ($1)", "param_keys": ["$id"]}, "b": {"name": "n", "sql": "insert into t values ($1)", "param_keys": ["$id"]}}`, `topic "b" (template 2): name: "n" is the name of template 1 (topic "a") too`},
		{"timescale", "toofew.json", `{"a": {"name": "n", "sql": "insert into t values ($1, $2)", "param_keys": ["$id"]}}`, `sql: the SQL uses $2 but param_keys has 1 values`},
		{"timescale", "unused.json", `{"a": {"name": "n", "sql": "insert into t values ($1, '$2')", "param_keys": ["$id", "$topic"]}}`, `param_keys: the SQL does not use $2`},
		{"timescale", "sqltype.json", `{"a": {"name": "n", "sql": 5, "param_keys": []}}`, `sql: line 1: sql is a number; want a string`},
		{"timescale", "quote.json", `{"a": {"name": "n", "sql": "insert into t values ('x", "param_keys": []}}`, `unterminated '`},
	} {
		var err error
		switch c.kind {
		case "influx":
			_, err = tsdb.ParseInflux(c.name, []byte(c.body))
		case "opentsdb":
			_, err = tsdb.ParseOpenTSDB(c.name, []byte(c.body))
		default:
			_, err = tsdb.ParseTimescale(c.name, []byte(c.body))
		}
		var te *tsdb.TemplateError
		if err == nil || !errors.As(err, &te) || !errors.Is(err, persist.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a TemplateError matching ErrInvalid saying %q", c.name, err, c.want)
		}
	}
	_, err := tsdb.LoadInflux(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

// TestSQLParams: $n inside strings, identifiers and comments is not a
// parameter.
func TestSQLParams(t *testing.T) {
	ok := []string{
		`insert into t(a, b) values ($1, $2)`,
		`insert into t(a, b) values ($2, $1) -- $3`,
		`insert into t(a, "$3", b) values ($1, /* $3 */ $2)`,
		`insert into t(a, b) values ($1 || '$3''$4', $2)`,
		`insert into t(a, b) values ($1 || $q$ $3 $q$, $2::text || $$x$$)`,
		`insert into t(a, b) values ($1, E'\'$3' || $2)`,
	}
	for _, sql := range ok {
		body := fmt.Sprintf(`{"a": {"name": "n", "sql": %q, "param_keys": ["$id", "$topic"]}}`, sql)
		if _, err := tsdb.ParseTimescale("sql.json", []byte(body)); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestNotJSONOnce: a payload that is not JSON is read once for all the
// templates of its topic, and skips those that take a path only.
func TestNotJSONOnce(t *testing.T) {
	set, err := tsdb.ParseInflux("n.json", []byte(`{"#": [
		{"measurement": "a", "fields": {"v": ["$payload", "v"]}},
		{"measurement": "b", "fields": {"raw": "$payload"}}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, errs := lines(t, set, msg("x", "\xff not json"), &tsdb.LineOptions{ServerTime: true})
	if got != "b raw=\"\xff not json\"\n" || len(errs) != 1 || tsdb.ReasonOf(errs[0]) != tsdb.NotJSON {
		t.Errorf("%q %v", got, errs)
	}
}
