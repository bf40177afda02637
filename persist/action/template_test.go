package action_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/action"
)

var hostile = []string{
	"a'; DROP TABLE mqtt_msg; --",
	"x\r\nFLUSHALL",
	`quo"te and \back\slash`,
	"ünïcødé/温度/😀",
	"${clientid}",
	"?",
	"$1",
	"",
}

func TestTemplateSQLPlaceholders(t *testing.T) {
	tests := []struct {
		text        string
		placeholder func(int) string
		want        string
		names       []string
	}{
		{
			text:        "insert into conn(clientid) values(${clientid})",
			placeholder: action.PlaceholderQuestion,
			want:        "insert into conn(clientid) values(?)",
			names:       []string{"clientid"},
		},
		{
			text:        "insert into msg(msgid, topic) values(${msgid}, ${topic})",
			placeholder: action.PlaceholderDollar,
			want:        "insert into msg(msgid, topic) values($1, $2)",
			names:       []string{"msgid", "topic"},
		},
		{
			// A name used twice gets two placeholders, numbered in order.
			text:        "update t set a = ${topic}, b = ${clientid} where c = ${topic}",
			placeholder: action.PlaceholderDollar,
			want:        "update t set a = $1, b = $2 where c = $3",
			names:       []string{"topic", "clientid", "topic"},
		},
		{
			text:        "update t set a = ${topic}, b = ${clientid} where c = ${topic}",
			placeholder: nil, // default "?"
			want:        "update t set a = ?, b = ? where c = ?",
			names:       []string{"topic", "clientid", "topic"},
		},
		{
			// Variables next to each other and to text; $$ and a lone $ stay.
			text:        "select ${msgid}${topic}x, '$$' , $, $${literal}",
			placeholder: action.PlaceholderDollar,
			want:        "select $1$2x, '$$' , $, ${literal}",
			names:       []string{"msgid", "topic"},
		},
		{
			text:        "delete from mqtt_retain",
			placeholder: action.PlaceholderDollar,
			want:        "delete from mqtt_retain",
			names:       nil,
		},
	}
	for _, tt := range tests {
		tpl, err := action.ParseTemplate(tt.text)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", tt.text, err)
		}
		got, names := tpl.SQL(tt.placeholder)
		if got != tt.want || !reflect.DeepEqual(names, tt.names) {
			t.Errorf("ParseTemplate(%q).SQL = %q, %q; want %q, %q", tt.text, got, names, tt.want, tt.names)
		}
		if !reflect.DeepEqual(tpl.Names(), tt.names) {
			t.Errorf("Names() = %q, want %q", tpl.Names(), tt.names)
		}
		if tpl.String() != tt.text {
			t.Errorf("String() = %q, want %q", tpl.String(), tt.text)
		}
	}
}

func TestTemplateArgsOrder(t *testing.T) {
	tpl, err := action.ParseTemplate("insert into x values(${topic}, ${qos}, ${payload}, ${topic}, ${retain}, ${timestamp})")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	m := &persist.Message{ID: "01J", Topic: "a/b", QoS: 2, Retain: true, Payload: []byte{0, 1, 2}, Time: at}
	args := tpl.Args(action.MessageVars(m))
	want := []any{"a/b", 2, []byte{0, 1, 2}, "a/b", 1, at}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("Args = %#v, want %#v", args, want)
	}
	// A nil payload is bound as an empty, non-nil []byte.
	args = tpl.Args(action.MessageVars(&persist.Message{Topic: "t"}))
	if p, ok := args[2].([]byte); !ok || p == nil || len(p) != 0 {
		t.Errorf("nil payload bound as %#v, want []byte{}", args[2])
	}
	if args[5] != nil {
		t.Errorf("zero time bound as %#v, want nil (NULL)", args[5])
	}
}

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		text    string
		allowed []string
		want    []string // substrings of the error
	}{
		{"insert into t values(${nosuch})", nil, []string{"unknown variable ${nosuch}", "allowed:", "clientid", "msgid"}},
		{"insert into t values(${payload})", action.VarNames(persist.OnConnected), []string{"unknown variable ${payload}", "allowed: clientid, username, peerhost, node, state, online_at, offline_at, timestamp"}},
		{"insert into t values(${clientid)", nil, []string{"unterminated ${ at offset 21"}},
		{"x ${", nil, []string{"unterminated ${"}},
		{"x ${}", nil, []string{"bad variable name ${}"}},
		{"x ${client id}", nil, []string{"bad variable name ${client id}"}},
		{"x ${1abc}", nil, []string{"bad variable name ${1abc}"}},
	}
	for _, tt := range tests {
		_, err := action.ParseTemplate(tt.text, tt.allowed...)
		if err == nil {
			t.Errorf("ParseTemplate(%q) succeeded, want an error", tt.text)
			continue
		}
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("ParseTemplate(%q) error %v does not match ErrInvalid", tt.text, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseTemplate(%q) error %q does not say %q", tt.text, err, w)
			}
		}
	}
}

func TestTemplateAllowedNames(t *testing.T) {
	// Names of one event are accepted, names of another are not.
	if _, err := action.ParseTemplate("insert into sub(topic, qos) values(${topic}, ${qos})", action.VarNames(persist.OnSubscribed)...); err != nil {
		t.Errorf("subscription variables: %v", err)
	}
	if _, err := action.ParseTemplate("insert into sub(x) values(${payload})", action.VarNames(persist.OnSubscribed)...); err == nil {
		t.Errorf("${payload} accepted for a subscription template")
	}
	if _, err := action.ParseTemplate("select ${anything}", "anything"); err != nil {
		t.Errorf("custom allowed name: %v", err)
	}
}

// TestTemplateSQLite runs templates against a real SQL engine: hostile
// values are stored as data and the table survives.
func TestTemplateSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("create table mqtt_msg(msgid text, topic text, sender text, payload blob, qos int, retain int)"); err != nil {
		t.Fatal(err)
	}
	ins, err := action.ParseTemplate("insert into mqtt_msg(msgid, topic, sender, payload, qos, retain) values(${msgid}, ${topic}, ${clientid}, ${payload}, ${qos}, ${retain})",
		action.VarNames(persist.OnPublish)...)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := action.ParseTemplate("select topic, sender, payload, qos, retain from mqtt_msg where msgid = ${msgid}", action.VarNames(persist.OnPublish)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range []func(int) string{action.PlaceholderQuestion, action.PlaceholderDollar} {
		insQ, _ := ins.SQL(ph)
		selQ, _ := sel.SQL(ph)
		for i, h := range hostile {
			m := &persist.Message{ID: fmt.Sprintf("%s-%d", ph(1), i), Topic: h, From: h, Payload: []byte(h), QoS: 1, Retain: i%2 == 0}
			if _, err := db.Exec(insQ, ins.Args(action.MessageVars(m))...); err != nil {
				t.Fatalf("insert %q with %s: %v", h, insQ, err)
			}
			var topic, sender string
			var payload []byte
			var qos, retain int
			if err := db.QueryRow(selQ, sel.Args(action.MessageVars(m))...).Scan(&topic, &sender, &payload, &qos, &retain); err != nil {
				t.Fatalf("select %q: %v", h, err)
			}
			wantRetain := 0
			if m.Retain {
				wantRetain = 1
			}
			if topic != h || sender != h || !bytes.Equal(payload, []byte(h)) || qos != 1 || retain != wantRetain {
				t.Errorf("round trip of %q: got topic %q sender %q payload %q qos %d retain %d", h, topic, sender, payload, qos, retain)
			}
		}
	}
	var n int
	if err := db.QueryRow("select count(*) from mqtt_msg").Scan(&n); err != nil {
		t.Fatalf("table gone after hostile inserts: %v", err)
	}
	if n != 2*len(hostile) {
		t.Errorf("%d rows, want %d", n, 2*len(hostile))
	}
}

func TestCommandArgs(t *testing.T) {
	tests := []struct {
		text string
		vars action.Vars
		want []string
	}{
		{"SET conn:${clientid} clientid", action.Vars{"clientid": "c1"}, []string{"SET", "conn:c1", "clientid"}},
		{"HSET mqtt:sub:${clientid} ${topic} ${qos}", action.SubscriptionVars("c1", persist.Subscription{Filter: "a/+", QoS: 1}), []string{"HSET", "mqtt:sub:c1", "a/+", "1"}},
		{"  RPUSH\tpub:${topic}\r\n ${msgid}  ", action.AckVars("c", persist.Ack{ID: "01X", Topic: "t"}), []string{"RPUSH", "pub:t", "01X"}},
		{`SET "a key with spaces" "" "say \"hi\" \\ ${clientid}"`, action.Vars{"clientid": "c 2"}, []string{"SET", "a key with spaces", "", `say "hi" \ c 2`}},
		{`SET k "x"y$${clientid}`, nil, []string{"SET", "k", "xy${clientid}"}},
		{"SET k ${payload}", action.MessageVars(&persist.Message{Payload: []byte{0, 0xff, '\r', '\n'}}), []string{"SET", "k", "\x00\xff\r\n"}},
		{"SET k ${username}", action.Vars{}, []string{"SET", "k", ""}},
	}
	for _, tt := range tests {
		c, err := action.ParseCommand(tt.text)
		if err != nil {
			t.Fatalf("ParseCommand(%q): %v", tt.text, err)
		}
		if got := c.Args(tt.vars); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCommand(%q).Args = %q, want %q", tt.text, got, tt.want)
		}
		if c.Len() != len(tt.want) {
			t.Errorf("Len() = %d, want %d", c.Len(), len(tt.want))
		}
	}
}

func TestCommandHostileValuesStayOneArgument(t *testing.T) {
	c, err := action.ParseCommand("HSET mqtt:retain:${topic} topic ${topic} from ${clientid}", action.VarNames(persist.OnRetain)...)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"topic", "topic", "clientid"}) {
		t.Errorf("Names() = %q", got)
	}
	for _, h := range hostile {
		args := c.Args(action.MessageVars(&persist.Message{Topic: h, From: h}))
		want := []string{"HSET", "mqtt:retain:" + h, "topic", h, "from", h}
		if !reflect.DeepEqual(args, want) {
			t.Errorf("value %q: args %q, want %q", h, args, want)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"", []string{"empty command"}},
		{" \t\r\n", []string{"empty command"}},
		{`SET "unterminated`, []string{"unterminated quote at offset 4"}},
		{"SET conn:${nosuch} x", []string{"argument 1", "unknown variable ${nosuch}", "allowed: clientid"}},
		{"SET conn:${clientid", []string{"unterminated ${"}},
		{"SET ${client id} x", []string{"unterminated ${"}}, // the space splits the argument
	}
	for _, tt := range tests {
		_, err := action.ParseCommand(tt.text, action.VarNames(persist.OnConnected)...)
		if err == nil {
			t.Errorf("ParseCommand(%q) succeeded, want an error", tt.text)
			continue
		}
		if !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("ParseCommand(%q) error %v does not match ErrInvalid", tt.text, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseCommand(%q) error %q does not say %q", tt.text, err, w)
			}
		}
	}
}

func TestVars(t *testing.T) {
	on := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	off := on.Add(time.Hour)
	c := &persist.Client{ID: "c1", Username: "u", PeerHost: "10.0.0.1", Node: "n1", Online: false, OnlineAt: on, OfflineAt: off}
	v := action.ClientVars(c)
	if v["state"] != 0 || v["timestamp"] != off || v["online_at"] != on || v["clientid"] != "c1" || v["node"] != "n1" {
		t.Errorf("ClientVars(offline) = %v", v)
	}
	c.Online, c.OfflineAt = true, time.Time{}
	v = action.ClientVars(c)
	if v["state"] != 1 || v["timestamp"] != on || v["offline_at"] != nil {
		t.Errorf("ClientVars(online) = %v", v)
	}
	cmd, err := action.ParseCommand("HSET mqtt:node:${node} ${clientid} ${timestamp}")
	if err != nil {
		t.Fatal(err)
	}
	if got := cmd.Args(v); !reflect.DeepEqual(got, []string{"HSET", "mqtt:node:n1", "c1", fmt.Sprint(on.Unix())}) {
		t.Errorf("time as command argument: %q", got)
	}
	// Every name VarNames offers for an event is set by that event's Vars.
	for e, vars := range map[persist.Event]action.Vars{
		persist.OnPublish:    action.MessageVars(&persist.Message{}),
		persist.OnConnected:  action.ClientVars(&persist.Client{}),
		persist.OnSubscribed: action.SubscriptionVars("c", persist.Subscription{}),
		persist.OnAcked:      action.AckVars("c", persist.Ack{}),
	} {
		names := action.VarNames(e)
		if len(names) != len(vars) {
			t.Errorf("VarNames(%v) = %q but its Vars has %d names", e, names, len(vars))
		}
		for _, n := range names {
			if _, ok := vars[n]; !ok {
				t.Errorf("VarNames(%v) offers %q, which its Vars does not set", e, n)
			}
		}
	}
}

func TestFormatArg(t *testing.T) {
	at := time.Unix(1482976411, 5).UTC()
	tests := []struct {
		v    any
		want string
	}{
		{nil, ""}, {"s", "s"}, {[]byte("b\x00"), "b\x00"}, {7, "7"}, {int64(-3), "-3"},
		{uint8(2), "2"}, {1.5, "1.5"}, {true, "true"}, {at, "1482976411"}, {time.Second, "1s"},
	}
	for _, tt := range tests {
		if got := action.FormatArg(tt.v); got != tt.want {
			t.Errorf("FormatArg(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
