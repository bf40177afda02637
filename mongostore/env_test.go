package mongostore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
	"github.com/mqttpersist/mqttpersist/mongostore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

// mongoEnv is the URL of the test server (FerretDB, started by `make
// services`), mongodb://127.0.0.1:PORT/mqtt.
const mongoEnv = "MQTTPERSIST_MONGODB_URL"

var (
	clientMu sync.Mutex
	clients  = map[string]*mongo.Client{}
)

// serverURL returns the test server's URL once it answers a ping, or ends
// the test through testenv.Unavailable.
func serverURL(t testing.TB) string {
	t.Helper()
	testClient(t)
	return testenv.Getenv(t, mongoEnv)
}

// testClient returns a client of the test server shared by the tests of
// the process.
func testClient(t testing.TB) *mongo.Client {
	t.Helper()
	u := testenv.Getenv(t, mongoEnv)
	clientMu.Lock()
	defer clientMu.Unlock()
	if c := clients[u]; c != nil {
		return c
	}
	c, err := mongo.Connect(options.Client().ApplyURI(u).SetServerSelectionTimeout(10 * time.Second).SetMaxPoolSize(64))
	if err != nil {
		t.Fatalf("mongo.Connect(%s): %v", u, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Ping(ctx, nil); err != nil {
		_ = c.Disconnect(context.Background())
		testenv.Unavailable(t, mongoEnv, "server unreachable: %v", err)
	}
	clients[u] = c
	return c
}

// freshName returns a database name no other test uses.
func freshName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t_" + hex.EncodeToString(b)
}

// freshDB returns a new database on the test server, dropped when the
// test ends.
func freshDB(t testing.TB) *mongo.Database {
	t.Helper()
	db := testClient(t).Database(freshName())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("drop database %s: %v", db.Name(), err)
		}
	})
	return db
}

// newStore returns a migrated store on db, closed when the test ends.
func newStore(t testing.TB, db *mongo.Database, opts *mongostore.Options) *mongostore.Store {
	t.Helper()
	st, err := mongostore.New(db, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return st
}

// harness makes each store on a fresh database; Shared makes a second
// store value on the same database (another broker node).
func harness(opts *mongostore.Options) persisttest.Harness {
	return persisttest.Harness{
		New: func(t testing.TB) persist.Store {
			return newStore(t, freshDB(t), opts)
		},
		Shared: func(t testing.TB, st persist.Store) persist.Store {
			o, err := mongostore.New(st.(*mongostore.Store).Database(), opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { _ = o.Close() })
			return o
		},
	}
}

// find returns the documents of a collection matching filter, as the
// mongo shell's db.<coll>.find(filter) shows them.
func find(t testing.TB, db *mongo.Database, coll string, filter bson.D) []bson.M {
	t.Helper()
	cur, err := db.Collection(coll).Find(t.Context(), filter)
	if err != nil {
		t.Fatalf("db.%s.find(%v): %v", coll, filter, err)
	}
	var out []bson.M
	if err := cur.All(t.Context(), &out); err != nil {
		t.Fatalf("db.%s.find(%v): %v", coll, filter, err)
	}
	return out
}
