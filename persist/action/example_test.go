package action_test

import (
	"fmt"
	"log"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/action"
)

func ExampleParseTemplate() {
	t, err := action.ParseTemplate("insert into mqtt_msg(msgid, topic, payload) values(${msgid}, ${topic}, ${payload})",
		action.VarNames(persist.OnPublish)...)
	if err != nil {
		log.Fatal(err)
	}
	query, names := t.SQL(action.PlaceholderDollar)
	fmt.Println(query)
	fmt.Println(names)
	m := &persist.Message{ID: "01HX", Topic: "a'; DROP TABLE mqtt_msg; --", Payload: []byte("hi")}
	fmt.Printf("%q\n", t.Args(action.MessageVars(m))) // pass to db.ExecContext(ctx, query, args...)

	_, err = action.ParseTemplate("insert into conn(clientid) values(${clientId})", action.VarNames(persist.OnConnected)...)
	fmt.Println(err)
	// Output:
	// insert into mqtt_msg(msgid, topic, payload) values($1, $2, $3)
	// [msgid topic payload]
	// ["01HX" "a'; DROP TABLE mqtt_msg; --" "hi"]
	// action: template "insert into conn(clientid) values(${clientId})": unknown variable ${clientId} (allowed: clientid, username, peerhost, node, state, online_at, offline_at, timestamp)
}

func ExampleParseCommand() {
	cmd, err := action.ParseCommand("HSET mqtt:sub:${clientid} ${topic} ${qos}", action.VarNames(persist.OnSubscribed)...)
	if err != nil {
		log.Fatal(err)
	}
	args := cmd.Args(action.SubscriptionVars("x\r\nFLUSHALL", persist.Subscription{Filter: "a b/+", QoS: 1}))
	fmt.Printf("%d arguments: %q\n", len(args), args) // each one bulk string, e.g. rdb.Do(ctx, args...)
	// Output:
	// 4 arguments: ["HSET" "mqtt:sub:x\r\nFLUSHALL" "a b/+" "1"]
}
