package mongostore_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/mqttpersist/mqttpersist/mongostore"
	"github.com/mqttpersist/mqttpersist/persist"
)

// TestOpen opens stores by URL through persist.Open, with the package's
// own query parameters.
func TestOpen(t *testing.T) {
	if s := persist.Schemes(); !slices.Contains(s, "mongodb") || !slices.Contains(s, "mongodb+srv") {
		t.Fatalf("persist.Schemes() = %v, want mongodb and mongodb+srv", s)
	}
	u, err := url.Parse(serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	name := freshName()
	u.Path = "/" + name
	u.RawQuery = "collection_prefix=p_&payload_format=plain_text&w_mode=unsafe&r_mode=slave_ok&maxPoolSize=4"
	st, err := persist.Open(t.Context(), u.String())
	if err != nil {
		t.Fatalf("persist.Open(%s): %v", u, err)
	}
	ms := st.(*mongostore.Store)
	t.Cleanup(func() {
		_ = ms.Database().Drop(context.Background())
		_ = ms.Close()
	})
	if ms.Database().Name() != name {
		t.Errorf("database %q, want %q", ms.Database().Name(), name)
	}
	if c := ms.Collections(); c[0] != "p_mqtt_client" || c[2] != "p_mqtt_msg" {
		t.Errorf("collections %v, want them prefixed p_", c)
	}
	if err := ms.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := &persist.Message{ID: persist.NewID(), Topic: "open/t", Payload: []byte(`{"a":1}`), QoS: 1, Time: time.Now()}
	if err := st.Publish(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	// w_mode=unsafe: Publish need not wait for the server (FerretDB gets
	// acknowledged writes all the same); read until the write is there.
	deadline := time.Now().Add(5 * time.Second)
	var docs []bson.M
	for time.Now().Before(deadline) {
		if docs = find(t, ms.Database(), "p_mqtt_msg", bson.D{}); len(docs) == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(docs) != 1 {
		t.Fatalf("db.p_mqtt_msg.find(): %v, want the message", docs)
	}
	if p, ok := docs[0]["payload"].(string); !ok || p != `{"a":1}` {
		t.Errorf("payload %v (%T), want the string (payload_format=plain_text)", docs[0]["payload"], docs[0]["payload"])
	}
	if err := ms.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ms.Ping(t.Context()); !errors.Is(err, persist.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}

// TestOpenErrors checks the errors of malformed URLs, bad options and an
// unreachable server, none of which shows the password.
func TestOpenErrors(t *testing.T) {
	const secret = "s3cr3t-pass"
	for _, c := range []struct{ name, url string }{
		{"no hosts", "mongodb://user:" + secret + "@/db"},
		{"bad w_mode", "mongodb://user:" + secret + "@127.0.0.1:1/db?w_mode=maybe"},
		{"bad r_mode", "mongodb://user:" + secret + "@127.0.0.1:1/db?r_mode=any"},
		{"bad payload_format", "mongodb://user:" + secret + "@127.0.0.1:1/db?payload_format=xml"},
		{"bad option", "mongodb://user:" + secret + "@127.0.0.1:1/db?maxPoolSize=many"},
		{"bad collection prefix", "mongodb://user:" + secret + "@127.0.0.1:1/db?collection_prefix=a$b"},
	} {
		_, err := persist.Open(t.Context(), c.url)
		if !errors.Is(err, persist.ErrInvalid) || persist.IsRetryable(err) {
			t.Errorf("%s: %v, want a non-retryable error matching ErrInvalid", c.name, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the password: %v", c.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := mongostore.Open(ctx, "mongodb://user:"+secret+"@127.0.0.1:1/db?serverSelectionTimeoutMS=300&connectTimeoutMS=300", nil)
	if !errors.Is(err, persist.ErrUnavailable) || !persist.IsRetryable(err) {
		t.Errorf("unreachable server: %v, want a retryable error matching ErrUnavailable", err)
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("unreachable server: the error shows the password: %v", err)
	}
	db := testClient(t).Database(freshName())
	for _, o := range []mongostore.Options{
		{ClockSkew: -time.Second},
		{WriteTimeout: -time.Second},
		{WriteTimeout: time.Millisecond},
		{PollInterval: -1},
		{AckGrace: -1},
		{PayloadFormat: "xml"},
		{MessageCollection: "mqtt_client"},
		{RetainCollection: "system.x"},
	} {
		if _, err := mongostore.New(db, &o); !errors.Is(err, persist.ErrInvalid) {
			t.Errorf("New(%+v): %v, want ErrInvalid", o, err)
		}
	}
	if _, err := mongostore.New(nil, nil); !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("New(nil): %v, want ErrInvalid", err)
	}
}
