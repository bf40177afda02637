package mongostore_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/mqttpersist/mqttpersist/mongostore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

// one returns the single document of docs, failing t otherwise.
func one(t *testing.T, what string, docs []bson.M) bson.M {
	t.Helper()
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1: %v", what, len(docs), docs)
	}
	return docs[0]
}

// fields checks the fields of doc that want names.
func fields(t *testing.T, what string, doc bson.M, want bson.M) {
	t.Helper()
	for k, w := range want {
		if g, ok := doc[k]; !ok || fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s: %s is %v (%T), want %v (%T); document %v", what, k, g, g, w, w, doc)
		}
	}
}

// TestSeeds types the seeds' own look-ups against what the store wrote
// with its default options and collection names:
// db.mqtt_client.findOne({clientid: "test"}),
// db.mqtt_sub.find({clientid: "test"}), db.mqtt_msg.find({sender:
// "test"}), db.mqtt_retain.findOne({topic: "retain"}), and the cursor of
// mqtt_acked.
func TestSeeds(t *testing.T) {
	db := freshDB(t)
	st := newStore(t, db, &mongostore.Options{ClockSkew: 250 * time.Millisecond})
	ctx := t.Context()
	online := time.Unix(1482976411, 0)
	if err := st.Connected(ctx, &persist.Client{ID: "test", Node: "emqx@127.0.0.1", Online: true, OnlineAt: online}); err != nil {
		t.Fatal(err)
	}
	c := one(t, `db.mqtt_client.findOne({clientid: "test"}) online`, find(t, db, "mqtt_client", bson.D{{Key: "clientid", Value: "test"}}))
	fields(t, "online client", c, bson.M{"clientid": "test", "state": 1, "node": "emqx@127.0.0.1", "online_at": int64(1482976411), "offline_at": nil})

	offline := time.Unix(1482976501, 0)
	if err := st.Connected(ctx, &persist.Client{ID: "test", Node: "emqx@127.0.0.1", OfflineAt: offline}); err != nil {
		t.Fatal(err)
	}
	c = one(t, `db.mqtt_client.findOne({clientid: "test"}) offline`, find(t, db, "mqtt_client", bson.D{{Key: "clientid", Value: "test"}}))
	fields(t, "offline client", c, bson.M{"clientid": "test", "state": 0, "online_at": int64(1482976411), "offline_at": int64(1482976501)})

	if err := st.Subscribed(ctx, "test", []persist.Subscription{{Filter: "test_topic1", QoS: 1}, {Filter: "test_topic2", QoS: 2}}, nil); err != nil {
		t.Fatal(err)
	}
	subs := find(t, db, "mqtt_sub", bson.D{{Key: "clientid", Value: "test"}})
	if len(subs) != 2 {
		t.Fatalf(`db.mqtt_sub.find({clientid: "test"}): %v, want 2 subscriptions`, subs)
	}
	byTopic := map[string]bson.M{}
	for _, s := range subs {
		byTopic[fmt.Sprint(s["topic"])] = s
	}
	fields(t, "test_topic1", byTopic["test_topic1"], bson.M{"clientid": "test", "qos": 1})
	fields(t, "test_topic2", byTopic["test_topic2"], bson.M{"clientid": "test", "qos": 2})

	arrived := time.Unix(1482976729, 0)
	m := &persist.Message{ID: persist.NewID(), Topic: "/World", From: "test", QoS: 1, Retain: true, Payload: []byte("Hello world!"), Time: arrived}
	if err := st.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	msg := one(t, `db.mqtt_msg.find({sender: "test"})`, find(t, db, "mqtt_msg", bson.D{{Key: "sender", Value: "test"}}))
	fields(t, "message", msg, bson.M{"topic": "/World", "msgid": m.ID, "sender": "test", "qos": 1, "retain": true, "payload": "Hello world!", "arrived": int64(1482976729)})

	r := &persist.Message{ID: persist.NewID(), Topic: "retain", From: "c1", QoS: 1, Retain: true, Payload: []byte("Hello world!"), Time: arrived}
	if err := st.Retain(ctx, r); err != nil {
		t.Fatal(err)
	}
	ret := one(t, `db.mqtt_retain.findOne({topic: "retain"})`, find(t, db, "mqtt_retain", bson.D{{Key: "topic", Value: "retain"}}))
	fields(t, "retained", ret, bson.M{"topic": "retain", "msgid": r.ID, "sender": "c1", "qos": 1, "payload": "Hello world!", "arrived": int64(1482976729)})

	// A fetch once the message settled (twice ClockSkew after its stamp)
	// moves the client's cursor over the acked
	// message: mqtt_acked holds clientid, topic and mongo_id.
	if err := st.Acked(ctx, "test", persist.Ack{ID: m.ID, Topic: m.Topic}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if got, err := st.FetchOffline(ctx, "test", "/World", persist.Fetch{}); err != nil || len(got) != 0 {
		t.Fatalf("FetchOffline after the ack: %v, %v; want nothing", got, err)
	}
	cur := one(t, `db.mqtt_acked.find({clientid: "test"})`, find(t, db, "mqtt_acked", bson.D{{Key: "clientid", Value: "test"}}))
	fields(t, "cursor", cur, bson.M{"clientid": "test", "topic": "/World", "mongo_id": m.ID})
	if acks := find(t, db, "mqtt_acked_msg", bson.D{{Key: "clientid", Value: "test"}}); len(acks) != 0 {
		t.Errorf("individual acks the cursor covers are left: %v", acks)
	}
}

// TestIndexes checks that Migrate made the seeds' indexes (and the
// store's), and that running it again changes nothing.
func TestIndexes(t *testing.T) {
	db := freshDB(t)
	st := newStore(t, db, nil)
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	keys := func(coll string) map[string]string {
		cur, err := db.Collection(coll).Indexes().List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var specs []struct {
			Name   string `bson:"name"`
			Key    bson.D `bson:"key"`
			Unique bool   `bson:"unique"`
		}
		if err := cur.All(t.Context(), &specs); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, s := range specs {
			var k []string
			for _, e := range s.Key {
				k = append(k, fmt.Sprintf("%s:%v", e.Key, e.Value))
			}
			out[s.Name] = strings.Join(k, " ") + fmt.Sprintf(" unique=%v", s.Unique)
		}
		return out
	}
	for _, c := range []struct {
		coll string
		want map[string]string
	}{
		{"mqtt_client", map[string]string{"clientid_node": "clientid:1 node:1 unique=false"}},
		{"mqtt_sub", map[string]string{"clientid": "clientid:1 unique=false", "clientid_topic": "clientid:1 topic:1 unique=true"}},
		{"mqtt_msg", map[string]string{"sender_topic": "sender:1 topic:1 unique=false", "topic_stored": "topic:1 stored:1 unique=false"}},
		{"mqtt_retain", map[string]string{"topic": "topic:1 unique=true"}},
		{"mqtt_acked", map[string]string{"clientid_topic": "clientid:1 topic:1 unique=true"}},
		{"mqtt_acked_msg", map[string]string{"clientid_msgid": "clientid:1 msgid:1 unique=true"}},
	} {
		got := keys(c.coll)
		for name, w := range c.want {
			if got[name] != w {
				t.Errorf("db.%s index %s: %q, want %q (all: %v)", c.coll, name, got[name], w, got)
			}
		}
	}
	// FerretDB has no TTL indexes: Migrate made plain ones, and says so.
	ttl, err := st.TTL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ttl {
		t.Errorf("TTL() = true on FerretDB, which has no TTL indexes")
	}
	o, err := mongostore.New(db, nil) // a store that did not migrate asks the server
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := o.TTL(t.Context()); err != nil || ttl {
		t.Errorf("TTL() of a second store = %v, %v; want false", ttl, err)
	}
}

// TestPayloadFormats stores payloads in both formats and checks the
// document the server holds and the bytes that come back.
func TestPayloadFormats(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 80) + "1" + strings.Repeat("}", 80)
	big := bytes.Repeat([]byte{0, 0xff, 0x80, 'x'}, 1<<18) // 1 MiB, not UTF-8
	type kind int
	const (
		document    kind = iota // a document (or array), the bytes given back by it
		documentRaw             // a document, with the exact bytes beside it
		text                    // a string
		binary                  // binary
	)
	cases := []struct {
		name    string
		payload []byte
		json    kind // stored as, with mongo_json
		plain   kind // with plain_text
	}{
		{"compact object", []byte(`{"temp":21.5,"unit":"C","ok":true,"n":null,"big":12345678901}`), document, text},
		{"array", []byte(`[1,"two",{"three":3}]`), document, text},
		{"object with spaces", []byte(`{ "temp": 21.5 }`), documentRaw, text},
		{"escaped unicode", []byte(`{"t":"\u00e9"}`), documentRaw, text},
		{"float forms", []byte(`{"a":1.0,"b":1e3}`), documentRaw, text},
		{"unicode and controls", []byte("{\"t\":\"é\\n\\u0001\"}"), document, text},
		{"dollar key", []byte(`{"$gt":""}`), text, text},
		{"dollar key nested", []byte(`{"q":{"$where":"1"}}`), text, text},
		{"dotted key", []byte(`{"a.b":1}`), text, text},
		{"empty key", []byte(`{"":1}`), text, text},
		{"repeated key", []byte(`{"a":1,"a":2}`), text, text},
		{"NUL escape", []byte(`{"a":"\u0000"}`), text, text},
		{"negative zero", []byte(`{"a":-0.0}`), text, text},
		{"out of range", []byte(`{"a":1e999}`), text, text},
		{"too deep", []byte(deep), text, text},
		{"JSON string", []byte(`"just a string"`), text, text},
		{"JSON number", []byte(`42`), text, text},
		{"not JSON", []byte("Hello world!"), text, text},
		{"empty", []byte{}, text, text},
		{"NUL byte", []byte("a\x00b"), binary, binary},
		{"invalid UTF-8", []byte{'{', 0xff, '}'}, binary, binary},
		{"1 MiB binary", big, binary, binary},
	}
	for _, f := range []mongostore.PayloadFormat{mongostore.MongoJSON, mongostore.PlainText} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			db := freshDB(t)
			st := newStore(t, db, &mongostore.Options{PayloadFormat: f})
			for _, c := range cases {
				m := persisttest.NewMessage("pf/"+c.name, c.payload)
				if err := st.Publish(t.Context(), m); err != nil {
					t.Fatalf("%s: Publish: %v", c.name, err)
				}
				rm := persisttest.NewMessage("pfr/"+c.name, c.payload)
				if len(c.payload) > 0 {
					if err := st.Retain(t.Context(), rm); err != nil {
						t.Fatalf("%s: Retain: %v", c.name, err)
					}
				}
				want := c.json
				if f == mongostore.PlainText {
					want = c.plain
				}
				doc := one(t, c.name, find(t, db, "mqtt_msg", bson.D{{Key: "_id", Value: m.ID}}))
				_, hasRaw := doc["payload_raw"]
				var got kind
				switch p := doc["payload"].(type) {
				case bson.D, bson.M, bson.A:
					got = document
					if hasRaw {
						got = documentRaw
					}
				case string:
					got = text
				case bson.Binary:
					got = binary
				default:
					t.Errorf("%s: payload is a %T", c.name, p)
				}
				if got != want {
					t.Errorf("%s: stored as kind %d (payload %T, raw %v), want kind %d", c.name, got, doc["payload"], hasRaw, want)
				}
				back, err := st.FetchOffline(t.Context(), "reader", m.Topic, persist.Fetch{})
				if err != nil || len(back) != 1 {
					t.Fatalf("%s: FetchOffline: %v, %v", c.name, back, err)
				}
				if !bytes.Equal(back[0].Payload, c.payload) {
					t.Errorf("%s: payload came back as %q, want %q", c.name, short(back[0].Payload), short(c.payload))
				}
				if len(c.payload) == 0 {
					continue
				}
				rs, err := st.Retained(t.Context(), rm.Topic)
				if err != nil || len(rs) != 1 || !bytes.Equal(rs[0].Payload, c.payload) {
					t.Errorf("%s: Retained: %v, %v; want the payload back", c.name, rs, err)
				}
			}
			if f == mongostore.MongoJSON {
				// The documents are queryable: the seeds' point of mongo_json.
				hot := find(t, db, "mqtt_msg", bson.D{{Key: "payload.temp", Value: bson.D{{Key: "$gt", Value: 20}}}})
				if len(hot) != 2 {
					t.Errorf(`db.mqtt_msg.find({"payload.temp": {$gt: 20}}) found %d messages, want 2`, len(hot))
				}
			}
		})
	}
}

func short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// TestHostileNames stores client IDs, topics, nodes and properties that
// look like MongoDB operators, paths or injections, and reads them back
// as data.
func TestHostileNames(t *testing.T) {
	db := freshDB(t)
	st := newStore(t, db, nil)
	ctx := t.Context()
	names := []string{`{"$gt":""}`, "$where", "$gt", "a.b", "a.$", `"; db.dropDatabase(); "`, "'", `\`, "传感器", "😀", "\u202e", "$SYS/x", "a\tb\r\nc"}
	for i, n := range names {
		id := fmt.Sprintf("%s-%d", n, i)
		topicName := n + "/t"
		if err := st.Connected(ctx, &persist.Client{ID: id, Node: n, Username: n, PeerHost: n, Online: true, OnlineAt: time.Now()}); err != nil {
			t.Fatalf("Connected(%q): %v", id, err)
		}
		c, err := st.Client(ctx, id)
		if err != nil || c.ID != id || c.Node != n || c.Username != n || c.PeerHost != n {
			t.Errorf("Client(%q) = %+v, %v", id, c, err)
		}
		if err := st.Subscribed(ctx, id, []persist.Subscription{{Filter: topicName, QoS: 1, History: true}, {Filter: n + "/+", QoS: 2}}, nil); err != nil {
			t.Fatalf("Subscribed(%q): %v", id, err)
		}
		subs, err := st.Subscriptions(ctx, id)
		if err != nil || len(subs) != 2 {
			t.Errorf("Subscriptions(%q) = %+v, %v", id, subs, err)
		}
		m := persisttest.NewMessage(topicName, []byte(n))
		m.From, m.Node = n, n
		m.Props = persist.Properties{ContentType: n, ResponseTopic: n, User: []persist.UserProperty{{Key: n, Value: n}, {Key: "$set", Value: "a.b"}}}
		if err := st.Publish(ctx, m); err != nil {
			t.Fatalf("Publish(%q): %v", topicName, err)
		}
		got, err := st.FetchOffline(ctx, id, topicName, persist.Fetch{})
		if err != nil || len(got) != 1 {
			t.Fatalf("FetchOffline(%q, %q) = %v, %v", id, topicName, got, err)
		}
		g := got[0]
		if g.Topic != topicName || string(g.Payload) != n || g.From != n || g.Node != n || g.Props.ContentType != n ||
			g.Props.ResponseTopic != n || len(g.Props.User) != 2 || g.Props.User[0] != (persist.UserProperty{Key: n, Value: n}) {
			t.Errorf("message to %q came back as %+v", topicName, g)
		}
		if got, err := st.FetchOffline(ctx, id, n+"/+", persist.Fetch{}); err != nil || len(got) != 1 || got[0].ID != m.ID {
			t.Errorf("FetchOffline(%q, %q/+) = %v, %v; want the message", id, n, got, err)
		}
		if err := st.Acked(ctx, id, persist.Ack{ID: m.ID, Topic: topicName}); err != nil {
			t.Fatal(err)
		}
		if got, err := st.FetchOffline(ctx, id, topicName, persist.Fetch{}); err != nil || len(got) != 0 {
			t.Errorf("FetchOffline(%q, %q) after the ack = %v, %v", id, topicName, got, err)
		}
		if err := st.Retain(ctx, m); err != nil {
			t.Fatal(err)
		}
		if rs, err := st.Retained(ctx, topicName); err != nil || len(rs) != 1 || rs[0].Topic != topicName {
			t.Errorf("Retained(%q) = %v, %v", topicName, rs, err)
		}
	}
	// Nothing was taken for an operator: the collections are all there,
	// and every message is a document of its own.
	for _, coll := range st.Collections() {
		if n, err := db.Collection(coll).CountDocuments(ctx, bson.D{}); err != nil {
			t.Errorf("db.%s.count(): %v", coll, err)
		} else if coll == "mqtt_msg" && n != int64(len(names)) {
			t.Errorf("db.mqtt_msg holds %d documents, want %d", n, len(names))
		}
	}
}
