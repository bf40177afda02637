package sqlstore_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// The seeds' column order comes first in the tables this package creates
// (MySQL's order; PostgreSQL's seed mqtt_msg has no node and puts sender
// before topic).
var seedCols = map[string][]string{
	"mqtt_client": {"id", "clientid", "state", "node", "online_at", "offline_at", "created"},
	"mqtt_sub":    {"id", "clientid", "topic", "qos", "created"},
	"mqtt_msg":    {"id", "msgid", "topic", "sender", "node", "qos", "retain", "payload", "arrived"},
	"mqtt_retain": {"id", "topic", "msgid", "sender", "node", "qos", "payload", "arrived"},
	"mqtt_acked":  {"id", "clientid", "topic", "mid", "created"},
}

// TestSeedQueries runs the seeds' own queries against what the store
// wrote and checks they show what the seeds show.
func TestSeedQueries(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		st := db.open(t, nil)
		ctx := withTimeout(t)
		onAt := time.Date(2016, 11, 15, 9, 40, 40, 0, time.UTC)
		offAt := time.Date(2016, 11, 15, 9, 46, 10, 0, time.UTC)

		// mqtt_client, client 'test' online.
		if err := st.Connected(ctx, &persist.Client{ID: "test", Node: "emqx@127.0.0.1", Online: true, OnlineAt: onAt.In(time.FixedZone("X", 3600))}); err != nil {
			t.Fatal(err)
		}
		cols, rows := db.query(t, "select * from mqtt_client where clientid = 'test'")
		checkCols(t, "mqtt_client", cols)
		want := row{"clientid": "test", "state": "1", "node": "emqx@127.0.0.1", "online_at": shellTime(onAt), "offline_at": "NULL"}
		checkRows(t, "client online", rows, []row{want})
		if len(rows) == 1 && (rows[0]["id"] == "NULL" || rows[0]["created"] == "NULL") {
			t.Errorf("client row: id %s, created %s; want both set", rows[0]["id"], rows[0]["created"])
		}
		// Offline.
		if err := st.Connected(ctx, &persist.Client{ID: "test", Node: "emqx@127.0.0.1", OfflineAt: offAt}); err != nil {
			t.Fatal(err)
		}
		_, rows = db.query(t, "select * from mqtt_client where clientid = 'test'")
		want["state"], want["offline_at"] = "0", shellTime(offAt)
		checkRows(t, "client offline", rows, []row{want})

		// Client 'moved' leaves node a for node b; a's disconnect arrives
		// last and leaves the row as b's connect wrote it.
		for _, c := range []*persist.Client{
			{ID: "moved", Node: "emqx@10.0.0.1", Online: true, OnlineAt: onAt},
			{ID: "moved", Node: "emqx@10.0.0.2", Online: true, OnlineAt: onAt.Add(time.Minute)},
			{ID: "moved", Node: "emqx@10.0.0.1", Online: false, OfflineAt: onAt.Add(30 * time.Second)},
		} {
			if err := st.Connected(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		_, rows = db.query(t, "select * from mqtt_client where clientid = 'moved'")
		checkRows(t, "client moved to node b, after node a's late disconnect", rows,
			[]row{{"clientid": "moved", "state": "1", "node": "emqx@10.0.0.2", "online_at": shellTime(onAt.Add(time.Minute)), "offline_at": "NULL"}})

		// mqtt_sub.
		if err := st.Subscribed(ctx, "test", []persist.Subscription{{Filter: "test_topic1", QoS: 1}, {Filter: "test_topic2", QoS: 2}}, nil); err != nil {
			t.Fatal(err)
		}
		cols, rows = db.query(t, "select * from mqtt_sub where clientid = 'test' order by id")
		checkCols(t, "mqtt_sub", cols)
		checkRows(t, "subscriptions", rows, []row{
			{"clientid": "test", "topic": "test_topic1", "qos": "1"},
			{"clientid": "test", "topic": "test_topic2", "qos": "2"},
		})

		// mqtt_msg.
		arrived := time.Date(2016, 12, 24, 17, 25, 12, 0, time.UTC)
		hello := &persist.Message{ID: persist.NewIDAt(arrived), Topic: "hello", Payload: []byte("hello"), QoS: 1, From: "test", Time: arrived}
		world := &persist.Message{ID: persist.NewIDAt(arrived.Add(33 * time.Second)), Topic: "world", Payload: []byte("world"), QoS: 1, From: "test", Time: arrived.Add(33 * time.Second)}
		if err := st.Publish(ctx, hello, world); err != nil {
			t.Fatal(err)
		}
		cols, rows = db.query(t, "select * from mqtt_msg where sender = 'test' order by id")
		checkCols(t, "mqtt_msg", cols)
		checkRows(t, "messages", rows, []row{
			{"msgid": hello.ID, "topic": "hello", "sender": "test", "node": "NULL", "qos": "1", "retain": "0", "payload": "hello", "arrived": shellTime(hello.Time)},
			{"msgid": world.ID, "topic": "world", "sender": "test", "node": "NULL", "qos": "1", "retain": "0", "payload": "world", "arrived": shellTime(world.Time)},
		})

		// mqtt_retain.
		r := &persist.Message{ID: persist.NewID(), Topic: "retain", Payload: []byte("www"), QoS: 1, From: "test", Retain: true, Time: time.Now()}
		if err := st.Retain(ctx, r); err != nil {
			t.Fatal(err)
		}
		cols, rows = db.query(t, "select * from mqtt_retain where topic = 'retain'")
		checkCols(t, "mqtt_retain", cols)
		checkRows(t, "retained", rows, []row{{"topic": "retain", "msgid": r.ID, "sender": "test", "node": "NULL", "qos": "1", "payload": "www", "arrived": shellTime(r.Time)}})

		// mqtt_acked: the cursor of client 'test' on topic 'hello'.
		if err := st.Acked(ctx, "test", persist.Ack{ID: hello.ID, Topic: "hello"}); err != nil {
			t.Fatal(err)
		}
		cols, rows = db.query(t, "select * from mqtt_acked where clientid = 'test'")
		checkCols(t, "mqtt_acked", cols)
		checkRows(t, "acks", rows, []row{{"clientid": "test", "topic": "hello", "mid": hello.ID}})

		// The other way round: rows the seeds' own INSERTs write are read
		// by the store.
		db.exec(t,
			"insert into mqtt_sub(clientid, topic, qos) values('seed', 'test_topic1', 1)",
			"insert into mqtt_sub(clientid, topic, qos) values('seed', 'test_topic2', 2)")
		subs, err := st.Subscriptions(ctx, "seed")
		if err != nil {
			t.Fatal(err)
		}
		if want := []persist.Subscription{{Filter: "test_topic1", QoS: 1}, {Filter: "test_topic2", QoS: 2}}; !slices.Equal(subs, want) {
			t.Errorf("Subscriptions of rows inserted by the seeds' SQL = %+v, want %+v", subs, want)
		}
		// A seeded subscription has no start: it fetches all it matches.
		got, err := st.FetchOffline(ctx, "seed", "hello", persist.Fetch{})
		if err != nil || len(got) != 1 || got[0].ID != hello.ID {
			t.Errorf("FetchOffline for a seeded subscription = %v, %v; want the hello message", got, err)
		}
	})
}

func checkCols(t *testing.T, table string, got []string) {
	t.Helper()
	want := seedCols[table]
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("select * from %s: columns %v; want the seeds' %v first", table, got, want)
	}
	if slices.Contains(got, "ukey") {
		t.Errorf("select * from %s shows the key hash column: %v", table, got)
	}
}

// checkRows checks the named columns of rows (others are not compared;
// times by their first 19 characters).
func checkRows(t *testing.T, what string, got, want []row) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows %v; want %d %v", what, len(got), got, len(want), want)
		return
	}
	for i := range want {
		for col, w := range want[i] {
			g, ok := got[i][col]
			switch {
			case !ok:
				t.Errorf("%s: row %d has no column %s", what, i, col)
			case w != "NULL" && len(w) == 19 && strings.Count(w, ":") == 2 && g != "NULL":
				if !strings.HasPrefix(strings.Replace(g, "T", " ", 1), w) {
					t.Errorf("%s: row %d: %s = %q, want %q", what, i, col, g, w)
				}
			case g != w:
				t.Errorf("%s: row %d: %s = %q, want %q", what, i, col, g, w)
			}
		}
	}
}

// Seeds' DDL and example rows, verbatim (the rows as the seeds' queries
// show them).
var seedDDL = map[string][]string{
	"mysql": {
		"DROP TABLE IF EXISTS `mqtt_client`",
		"CREATE TABLE `mqtt_client` (\n  `id` int(11) unsigned NOT NULL AUTO_INCREMENT,\n  `clientid` varchar(64) DEFAULT NULL,\n  `state` varchar(3) DEFAULT NULL,\n  `node` varchar(100) DEFAULT NULL,\n  `online_at` datetime DEFAULT NULL,\n  `offline_at` datetime DEFAULT NULL,\n  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,\n  PRIMARY KEY (`id`),\n  KEY `mqtt_client_idx` (`clientid`),\n  UNIQUE KEY `mqtt_client_key` (`clientid`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8",
		"DROP TABLE IF EXISTS `mqtt_sub`",
		"CREATE TABLE `mqtt_sub` (\n  `id` int(11) unsigned NOT NULL AUTO_INCREMENT,\n  `clientid` varchar(64) DEFAULT NULL,\n  `topic` varchar(255) DEFAULT NULL,\n  `qos` int(3) DEFAULT NULL,\n  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,\n  PRIMARY KEY (`id`),\n  KEY `mqtt_sub_idx` (`clientid`,`topic`(255),`qos`),\n  UNIQUE KEY `mqtt_sub_key` (`clientid`,`topic`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8",
		"DROP TABLE IF EXISTS `mqtt_msg`",
		"CREATE TABLE `mqtt_msg` (\n  `id` int(11) unsigned NOT NULL AUTO_INCREMENT,\n  `msgid` varchar(100) DEFAULT NULL,\n  `topic` varchar(1024) NOT NULL,\n  `sender` varchar(1024) DEFAULT NULL,\n  `node` varchar(60) DEFAULT NULL,\n  `qos` int(11) NOT NULL DEFAULT '0',\n  `retain` tinyint(2) DEFAULT NULL,\n  `payload` blob,\n  `arrived` datetime NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8",
		"DROP TABLE IF EXISTS `mqtt_retain`",
		"CREATE TABLE `mqtt_retain` (\n  `id` int(11) unsigned NOT NULL AUTO_INCREMENT,\n  `topic` varchar(200) DEFAULT NULL,\n  `msgid` varchar(60) DEFAULT NULL,\n  `sender` varchar(100) DEFAULT NULL,\n  `node` varchar(100) DEFAULT NULL,\n  `qos` int(2) DEFAULT NULL,\n  `payload` blob,\n  `arrived` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `mqtt_retain_key` (`topic`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8",
		"DROP TABLE IF EXISTS `mqtt_acked`",
		"CREATE TABLE `mqtt_acked` (\n  `id` int(11) unsigned NOT NULL AUTO_INCREMENT,\n  `clientid` varchar(200) DEFAULT NULL,\n  `topic` varchar(200) DEFAULT NULL,\n  `mid` int(200) DEFAULT NULL,\n  `created` timestamp NULL DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `mqtt_acked_key` (`clientid`,`topic`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8",
	},
	"postgres": {
		"CREATE TABLE mqtt_client(\n  id SERIAL primary key,\n  clientid character varying(100),\n  state integer,\n  node character varying(100),\n  online_at timestamp,\n  offline_at timestamp,\n  created timestamp without time zone,\n  UNIQUE (clientid)\n)",
		"CREATE TABLE mqtt_sub(\n  id SERIAL primary key,\n  clientid character varying(100),\n  topic character varying(200),\n  qos integer,\n  created timestamp without time zone,\n  UNIQUE (clientid, topic)\n)",
		"CREATE TABLE mqtt_msg (\n  id SERIAL primary key,\n  msgid character varying(60),\n  sender character varying(100),\n  topic character varying(200),\n  qos integer,\n  retain integer,\n  payload text,\n  arrived timestamp without time zone\n)",
		"CREATE TABLE mqtt_retain(\n  id SERIAL primary key,\n  topic character varying(200),\n  msgid character varying(60),\n  sender character varying(100),\n  qos integer,\n  payload text,\n  arrived timestamp without time zone,\n  UNIQUE (topic)\n)",
		"CREATE TABLE mqtt_acked (\n  id SERIAL primary key,\n  clientid character varying(100),\n  topic character varying(100),\n  mid integer,\n  created timestamp without time zone,\n  UNIQUE (clientid, topic)\n)",
	},
}

var seedRows = []string{
	"insert into mqtt_client(clientid, state, node, online_at, offline_at, created) values('test', 1, 'emqx@127.0.0.1', '2016-11-15 09:40:40', NULL, '2016-12-24 09:40:22')",
	"insert into mqtt_sub(clientid, topic, qos) values('test', 'test_topic1', 1)",
	"insert into mqtt_sub(clientid, topic, qos) values('test', 'test_topic2', 2)",
	"insert into mqtt_msg(msgid, topic, sender, qos, retain, payload, arrived) values('53F98F80F66017005000004A60003', 'hello', 'test', 1, 0, 'hello', '2016-12-24 17:25:12')",
	"insert into mqtt_msg(msgid, topic, sender, qos, retain, payload, arrived) values('53F98F9FE42AD7005000004A60004', 'world', 'test', 1, 0, 'world', '2016-12-24 17:25:45')",
	"insert into mqtt_retain(topic, msgid, sender, qos, payload, arrived) values('retain', '53F33F7E4741E7007000004B70001', 'test', 1, 'www', '2016-12-24 16:55:18')",
	"insert into mqtt_acked(clientid, topic, mid, created) values('test', 'world', 4, '2016-12-24 17:30:00')",
}

// TestMigrateOverSeedTables creates the tables with the seeds' own DDL and
// rows, migrates them, and checks that the old rows are read and that what
// the seeds' types could not hold now fits.
func TestMigrateOverSeedTables(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		if db.dialect == "sqlite" {
			t.Skip("the seeds have no SQLite DDL")
		}
		db.exec(t, seedDDL[db.dialect]...)
		db.exec(t, seedRows...)
		st := db.open(t, nil)
		ctx := withTimeout(t)
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}

		// Old rows.
		c, err := st.Client(ctx, "test")
		if err != nil || !c.Online || c.Node != "emqx@127.0.0.1" || !c.OnlineAt.Equal(time.Date(2016, 11, 15, 9, 40, 40, 0, time.UTC)) {
			t.Errorf("Client(test) = %+v, %v; want the seeded online client", c, err)
		}
		// The seeded row's state (varchar on MySQL, integer on PostgreSQL)
		// says online: a disconnect from another node leaves it, one from
		// its node takes it offline.
		offAt := time.Date(2016, 11, 15, 9, 46, 10, 0, time.UTC)
		for _, tc := range []struct {
			node   string
			online bool
		}{{"emqx@10.0.0.9", true}, {"emqx@127.0.0.1", false}} {
			if err := st.Connected(ctx, &persist.Client{ID: "test", Node: tc.node, OfflineAt: offAt}); err != nil {
				t.Fatal(err)
			}
			c, err = st.Client(ctx, "test")
			if err != nil || c.Online != tc.online || c.Node != "emqx@127.0.0.1" {
				t.Errorf("Client(test) after a disconnect from %s = %+v, %v; want online %v on emqx@127.0.0.1", tc.node, c, err, tc.online)
			}
		}
		subs, err := st.Subscriptions(ctx, "test")
		if want := []persist.Subscription{{Filter: "test_topic1", QoS: 1}, {Filter: "test_topic2", QoS: 2}}; err != nil || !slices.Equal(subs, want) {
			t.Errorf("Subscriptions(test) = %+v, %v; want %+v", subs, err, want)
		}
		ret, err := st.Retained(ctx, "retain")
		if err != nil || len(ret) != 1 || string(ret[0].Payload) != "www" || ret[0].From != "test" {
			t.Errorf("Retained(retain) = %v, %v; want the seeded www", ret, err)
		}
		got, err := st.FetchOffline(ctx, "test", "+", persist.Fetch{})
		if err != nil || len(got) != 2 || string(got[0].Payload) != "hello" || string(got[1].Payload) != "world" {
			t.Errorf("FetchOffline(test, +) = %v, %v; want the seeded hello and world (the seeds' integer mid is no cursor)", got, err)
		} else if want := time.Date(2016, 12, 24, 17, 25, 12, 0, time.UTC); !got[0].Time.Equal(want) {
			t.Errorf("seeded hello arrived %v, want %v", got[0].Time, want)
		}

		// What the seeds' types could not hold.
		long := strings.Repeat("long/", 200)
		big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<18) // 1 MiB
		m := &persist.Message{ID: persist.NewID(), Topic: long, Payload: big, QoS: 1, From: long, Time: time.Now()}
		if err := st.Publish(ctx, m); err != nil {
			t.Fatalf("Publish of a 1 MiB payload to a 1000-byte topic: %v", err)
		}
		got, err = st.FetchOffline(ctx, long, long, persist.Fetch{})
		if err != nil || len(got) != 1 || !bytes.Equal(got[0].Payload, big) || got[0].From != long {
			t.Errorf("FetchOffline of the 1 MiB message: %d messages, %v", len(got), err)
		}
		if err := st.Acked(ctx, long, persist.Ack{ID: m.ID, Topic: long}); err != nil {
			t.Errorf("Acked with a ULID on a 1000-byte topic: %v", err)
		}
		for _, tp := range []string{"a", "a ", "A", "é", "e\u0301"} {
			if err := st.Retain(ctx, &persist.Message{ID: persist.NewID(), Topic: tp, Payload: []byte(tp), Time: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if err := st.Subscribed(ctx, tp, []persist.Subscription{{Filter: tp, QoS: 1}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, tp := range []string{"a", "a ", "A", "é", "e\u0301"} {
			ret, err := st.Retained(ctx, tp)
			if err != nil || len(ret) != 1 || string(ret[0].Payload) != tp {
				t.Errorf("Retained(%q) = %v, %v; want its own message only", tp, ret, err)
			}
			subs, err := st.Subscriptions(ctx, tp)
			if err != nil || len(subs) != 1 || subs[0].Filter != tp {
				t.Errorf("Subscriptions(%q) = %+v, %v; want its own only", tp, subs, err)
			}
		}
		// The seeds' queries still work on the migrated tables.
		_, rows := db.query(t, "select * from mqtt_retain where topic = 'a'")
		checkRows(t, "seed query on a migrated table", rows, []row{{"topic": "a", "payload": "a"}})
	})
}

// TestMigrateTwice checks Migrate is idempotent, also from a second store
// on the same tables.
func TestMigrateTwice(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		st := db.open(t, &sqlstore.Options{TablePrefix: "x_"})
		ctx := withTimeout(t)
		m := &persist.Message{ID: persist.NewID(), Topic: "t", Payload: []byte("p"), Time: time.Now()}
		if err := st.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := st.Migrate(ctx); err != nil {
				t.Fatalf("Migrate again (%d): %v", i, err)
			}
		}
		other := db.open(t, &sqlstore.Options{TablePrefix: "x_"})
		got, err := other.FetchOffline(ctx, "c", "t", persist.Fetch{})
		if err != nil || len(got) != 1 || got[0].ID != m.ID {
			t.Errorf("a second store after Migrate: %v, %v; want the message", got, err)
		}
		_, rows := db.query(t, "select count(*) as n from x_mqtt_msg")
		checkRows(t, "rows after migrating again", rows, []row{{"n": "1"}})
	})
}

// TestMigrateConcurrent migrates the same fresh tables from several
// stores (own pools, as several broker nodes starting at once).
func TestMigrateConcurrent(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		const n = 4
		stores := make([]*sqlstore.Store, n)
		for i := range stores {
			st, err := sqlstore.Open(t.Context(), db.url, &sqlstore.Options{TablePrefix: "c_"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			stores[i] = st
		}
		errs := make(chan error, n)
		for _, st := range stores {
			go func() { errs <- st.Migrate(t.Context()) }()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("concurrent Migrate: %v", err)
			}
		}
		m := &persist.Message{ID: persist.NewID(), Topic: "t", Payload: []byte("p"), Time: time.Now()}
		if err := stores[0].Publish(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if got, err := stores[n-1].FetchOffline(t.Context(), "c", "#", persist.Fetch{}); err != nil || len(got) != 1 {
			t.Errorf("after concurrent Migrate: %v, %v", got, err)
		}
	})
}
