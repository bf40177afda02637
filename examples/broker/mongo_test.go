package main

import (
	"context"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// mongoEnv is the URL of the test MongoDB server (FerretDB, from make
// services).
const mongoEnv = "MQTTPERSIST_MONGODB_URL"

// mongoURL is the test MongoDB server with a fresh database, dropped at
// cleanup.
func mongoURL(t testing.TB) string {
	base := testenv.Getenv(t, mongoEnv)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", mongoEnv, err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(base).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("mongo.Connect: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Ping(ctx, nil); err != nil {
		_ = c.Disconnect(context.Background())
		testenv.Unavailable(t, mongoEnv, "server unreachable: %v", err)
	}
	name := testenv.FreshName("t")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Database(name).Drop(ctx); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		_ = c.Disconnect(ctx)
	})
	u.Path = "/" + name
	return u.String()
}
