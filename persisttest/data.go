package persisttest

import (
	"strings"
)

// named is a test value with a readable name.
type named struct {
	name, value string
}

// awkward are topic names that are valid MQTT but hard on databases:
// characters that quote, escape or pattern-match in SQL, CQL, Redis and
// MongoDB; injection attempts that must stay data; unicode; and pairs that
// differ only in case or trailing space (different topics, whatever a
// database collation thinks).
var awkward = []named{
	{"dollar", "$SYS/x"},
	{"empty level", "a//b"},
	{"leading slash", "/a"},
	{"trailing slash", "a/"},
	{"only slash", "/"},
	{"unicode", "传感器/温度"},
	{"emoji", "😀/🚀"},
	{"combining accent", "cafe\u0301"},
	{"precomposed accent", "caf\u00e9"},
	{"quotes", `it's"q"`},
	{"sql injection", "a'; DROP TABLE mqtt_msg; --"},
	{"sql injection 2", `x"); DELETE FROM mqtt_retain; --`},
	{"crlf injection", "x\r\nFLUSHALL"},
	{"resp injection", "*1\r\n$8\r\nFLUSHALL\r\n"},
	{"backslash", `a\b\\c`},
	{"like wildcards", "100%_done"},
	{"glob chars", "a*b?[c]"},
	{"regex chars", "a.b^c(d)|e{2}"},
	{"json", `{"$gt":""}`},
	{"redis key separator", "mqtt:msg:x"},
	{"tab", "a\tb"},
	{"upper case", "A/b"},
	{"lower case", "a/b"},
	{"trailing space", "a "},
	{"no trailing space", "a"},
	{"leading space", " a"},
	{"space", " "},
	{"long", strings.Repeat("long/", 200)},
	{"long unicode", strings.Repeat("传", 333)},
}
