// Package testenv gives tests the real database servers that `make services`
// starts (scripts/services.sh), found through environment variables that
// .services/env exports:
//
//	MQTTPERSIST_POSTGRES_URL  postgres://mqtt:mqtt@127.0.0.1:15432/mqtt?sslmode=disable
//	MQTTPERSIST_MYSQL_URL     mysql://mqtt:mqtt@127.0.0.1:13306/mqtt
//	MQTTPERSIST_REDIS_URL                redis://127.0.0.1:16379/0
//	MQTTPERSIST_REDIS_CLUSTER_ADDRS      127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003
//	MQTTPERSIST_REDIS_SENTINEL_ADDRS     127.0.0.1:16389
//	MQTTPERSIST_REDIS_SENTINEL_MASTER    mymaster
//
// PostgresURL and MySQLURL create a fresh, empty database for one test and
// drop it when the test ends, so tests never see each other's tables and may
// run in parallel. RedisURL, RedisClusterAddrs and RedisSentinel return the
// Redis settings once their servers accept connections; Redis tests keep
// apart by key prefix (see FreshName).
//
// When a variable is unset or its server is unreachable, the test is skipped
// with a message naming the variable and `make services` — unless servers are
// required (CI set, or MQTTPERSIST_REQUIRE_SERVERS=1, as `make test` and
// .ci/run do), and then it fails.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // driver "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/mqttpersist/mqttpersist/internal/dsn"
)

// Environment variables read by this package.
const (
	PostgresEnv = "MQTTPERSIST_POSTGRES_URL"
	MySQLEnv    = "MQTTPERSIST_MYSQL_URL"
	// RedisEnv is a redis:// URL of a single Redis server.
	RedisEnv = "MQTTPERSIST_REDIS_URL"
	// RedisClusterEnv lists the host:port of Redis Cluster nodes, comma-separated.
	RedisClusterEnv = "MQTTPERSIST_REDIS_CLUSTER_ADDRS"
	// RedisSentinelEnv lists the host:port of Redis Sentinels, comma-separated.
	RedisSentinelEnv = "MQTTPERSIST_REDIS_SENTINEL_ADDRS"
	// RedisSentinelMasterEnv is the master name the Sentinels monitor.
	RedisSentinelMasterEnv = "MQTTPERSIST_REDIS_SENTINEL_MASTER"
	// RequireEnv=1 makes a missing server fail tests instead of skipping them.
	RequireEnv = "MQTTPERSIST_REQUIRE_SERVERS"
)

// SetupHint is what to run to get the servers; messages end with it.
const SetupHint = "run `make services` and `. .services/env` (or just `make test`)"

const (
	connectTimeout = 15 * time.Second
	dropTimeout    = 60 * time.Second
)

// Required reports whether tests must fail, not skip, when a server is
// missing: CI is set (and not "false" or "0"), or MQTTPERSIST_REQUIRE_SERVERS
// is true.
func Required() bool {
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		return true
	}
	req, _ := strconv.ParseBool(os.Getenv(RequireEnv))
	return req
}

// Unavailable ends the test because the server configured by the environment
// variable env cannot be used: t.Fatalf when servers are Required, t.Skipf
// otherwise. The message names env and SetupHint.
func Unavailable(t testing.TB, env, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf("testenv: %s: %s; %s", env, fmt.Sprintf(format, args...), SetupHint)
	if Required() {
		t.Fatalf("%s (servers are required here: CI or %s=1)", msg, RequireEnv)
	}
	t.Skipf("%s", msg)
}

// Getenv returns the value of the environment variable env, or ends the test
// through Unavailable when it is unset. Stores whose servers need no fresh
// database per test (Redis, ...) use it directly.
func Getenv(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		Unavailable(t, env, "not set")
	}
	return v
}

// PostgresURL returns a postgres:// URL to a fresh, empty database on the
// server MQTTPERSIST_POSTGRES_URL points at. The database is dropped (with
// FORCE, closing connections left open) when the test and its subtests end.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := Getenv(t, PostgresEnv)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: %s is not a URL: %v", PostgresEnv, err)
	}
	admin := adminDB(t, PostgresEnv, "pgx", base)
	name := freshName()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v", name, u.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		// FORCE cannot end an autovacuum worker (a superuser process) that
		// happens to be in the fresh database; it finishes in moments, so
		// try again a few times before calling it a failure.
		var err error
		for try := 0; try < 20; try++ {
			if _, err = admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err == nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
				continue
			}
			break
		}
		t.Errorf("testenv: drop database %s on %s: %v", name, u.Redacted(), err)
	})
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// MySQLURL returns a mysql:// URL to a fresh, empty database on the MariaDB
// or MySQL server MQTTPERSIST_MYSQL_URL points at; MySQLDSN turns it into a
// driver DSN. The database is dropped when the test and its subtests end,
// after killing connections left open in it.
func MySQLURL(t testing.TB) string {
	t.Helper()
	base := Getenv(t, MySQLEnv)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: %s is not a URL: %v", MySQLEnv, err)
	}
	adminDSN, err := dsn.MySQL(base)
	if err != nil {
		t.Fatalf("testenv: %s: %v", MySQLEnv, err)
	}
	// Drop waits for metadata locks; never wait the server's default year.
	adminDSN += sepFor(adminDSN) + "lock_wait_timeout=30"
	admin := adminDB(t, MySQLEnv, "mysql", adminDSN)
	name := freshName()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v", name, u.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		if err := killMySQLConns(ctx, admin, name); err != nil {
			t.Logf("testenv: closing connections to %s: %v", name, err)
		}
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("testenv: drop database %s on %s: %v", name, u.Redacted(), err)
		}
	})
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// MySQLDSN converts a mysql://user:pass@host:port/db?params URL into a
// github.com/go-sql-driver/mysql DSN (user:pass@tcp(host:port)/db?parseTime=true&...).
// It is internal/dsn.MySQL, which non-test code uses.
func MySQLDSN(url string) (string, error) {
	return dsn.MySQL(url)
}

// killMySQLConns kills the sessions whose current database is name, so a test
// that leaked an open transaction cannot block DROP DATABASE.
func killMySQLConns(ctx context.Context, admin *sql.DB, name string) error {
	rows, err := admin.QueryContext(ctx,
		"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()", name)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		// The session may end by itself meanwhile: ignore "unknown thread".
		_, _ = admin.ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10))
	}
	return nil
}

var (
	adminMu  sync.Mutex
	adminDBs = map[string]*sql.DB{}
)

// adminDB returns a pool on the server's own database, shared by all tests
// of the process, or ends the test through Unavailable when the server does
// not answer.
func adminDB(t testing.TB, env, driver, dataSource string) *sql.DB {
	t.Helper()
	key := driver + "\x00" + dataSource
	adminMu.Lock()
	defer adminMu.Unlock()
	if db, ok := adminDBs[key]; ok {
		return db
	}
	db, err := sql.Open(driver, dataSource)
	if err != nil {
		t.Fatalf("testenv: %s: %v", env, err)
	}
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		Unavailable(t, env, "server unreachable: %v", err)
	}
	adminDBs[key] = db
	return db
}

// RedisURL returns MQTTPERSIST_REDIS_URL once its server accepts TCP
// connections, or ends the test through Unavailable.
func RedisURL(t testing.TB) string {
	t.Helper()
	v := Getenv(t, RedisEnv)
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		t.Fatalf("testenv: %s=%q is not a redis:// URL", RedisEnv, v)
	}
	reachable(t, RedisEnv, u.Host)
	return v
}

// RedisClusterAddrs returns the node addresses of MQTTPERSIST_REDIS_CLUSTER_ADDRS
// once the first accepts TCP connections, or ends the test through Unavailable.
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	addrs := splitAddrs(Getenv(t, RedisClusterEnv))
	reachable(t, RedisClusterEnv, addrs[0])
	return addrs
}

// RedisSentinel returns the Sentinel addresses and the master name
// (MQTTPERSIST_REDIS_SENTINEL_ADDRS and MQTTPERSIST_REDIS_SENTINEL_MASTER) once
// the first Sentinel accepts TCP connections, or ends the test through
// Unavailable.
func RedisSentinel(t testing.TB) (addrs []string, master string) {
	t.Helper()
	addrs = splitAddrs(Getenv(t, RedisSentinelEnv))
	master = Getenv(t, RedisSentinelMasterEnv)
	reachable(t, RedisSentinelEnv, addrs[0])
	return addrs, master
}

func splitAddrs(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = append(out, v)
	}
	return out
}

// reachable ends the test through Unavailable when nothing accepts TCP
// connections at addr.
func reachable(t testing.TB, env, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		Unavailable(t, env, "server unreachable: %v", err)
		return
	}
	c.Close()
}

// FreshName returns a name no other test uses: prefix and 16 hex digits.
func FreshName(prefix string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return prefix + hex.EncodeToString(b[:])
}

// freshName returns a database name no other test uses: t_ and 16 hex digits.
func freshName() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "t_" + hex.EncodeToString(b[:])
}

func sepFor(dsn string) string {
	if strings.Contains(dsn, "?") {
		return "&"
	}
	return "?"
}
