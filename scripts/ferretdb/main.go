// Command ferretdb runs FerretDB (a MongoDB wire-protocol server) embedded,
// on its PostgreSQL backend, for the tests of mongostore: no MongoDB server
// package exists for the test machines. scripts/services/ferretdb.sh builds
// and starts it; it is a module of its own so that the library's module
// does not depend on FerretDB.
//
// Usage:
//
//	ferretdb -listen 127.0.0.1:27027 -postgresql-url postgres://u:p@127.0.0.1:15432/mqtt -database ferretdb
//
// It creates the PostgreSQL database -database (through -postgresql-url,
// whose user may create databases) when it is missing, serves MongoDB on
// -listen until SIGINT or SIGTERM, and logs warnings and errors to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/jackc/pgx/v5"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27027", "TCP address to serve MongoDB on")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL of a database whose user may create databases")
	database := flag.String("database", "ferretdb", "PostgreSQL database to keep FerretDB's data in (created when missing)")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()
	if err := run(*listen, *pgURL, *database, *level); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, pgURL, database, level string) error {
	if pgURL == "" {
		return errors.New("-postgresql-url is required")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	target, err := ensureDatabase(ctx, pgURL, database)
	if err != nil {
		return err
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: listen},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: target,
	})
	if err != nil {
		return err
	}
	logger.Warn("serving", "listen", listen, "database", database)
	return f.Run(ctx)
}

// ensureDatabase creates database on the server of pgURL when it is
// missing and returns the URL of that database.
func ensureDatabase(ctx context.Context, pgURL, database string) (string, error) {
	u, err := url.Parse(pgURL)
	if err != nil {
		return "", fmt.Errorf("-postgresql-url: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, database).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up database %q: %w", database, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{database}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %q: %w", database, err)
		}
	}
	u.Path = "/" + database
	u.RawPath = ""
	return u.String(), nil
}
