package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/mqttpersist/mqttpersist/internal/dsn"
	"github.com/mqttpersist/mqttpersist/persist"
)

// The schemes Open takes are registered with persist.Register, so that a
// program importing this package opens them with persist.Open, and
// *Store is a persist.Migrator.
func init() {
	for _, scheme := range []string{"sqlite", "sqlite3", "postgres", "postgresql", "mysql", "mariadb"} {
		persist.Register(scheme, openURL)
	}
}

var _ persist.Migrator = (*Store)(nil)

// openURL is the persist.Opener of every scheme Open takes: Open with
// default Options.
func openURL(ctx context.Context, url string) (persist.Store, error) {
	s, err := Open(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open connects to the database at url, pings it (so a malformed URL or an
// unreachable server fails here, with an error naming the address but never
// the password) and returns a store that owns the connection, without
// creating tables:
//
//	sqlite://path/to/file.db   relative (sqlite:///abs/path.db absolute); the directory is made,
//	                           WAL, busy_timeout 10s and _txlock=immediate unless the query sets them
//	sqlite::memory:            also sqlite://:memory:; one connection, gone at Close
//	postgres://user:pass@host:port/db?sslmode=disable   also postgresql://; pgx parameters
//	mysql://user:pass@host:port/db?param=value           also mariadb://; go-sql-driver parameters
//
// persist.Open takes the same URLs (with nil Options) once this package is
// imported, also blank: import _ "github.com/mqttpersist/mqttpersist/sqlstore".
func Open(ctx context.Context, url string, opts *Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scheme, _, _ := strings.Cut(url, ":")
	var (
		gdb     *gorm.DB
		sqlDB   *sql.DB
		name    string
		openErr error
	)
	gcfg := &gorm.Config{DisableAutomaticPing: true, Logger: logger.Discard}
	fail := func(kind error, err error, retry bool) (*Store, error) {
		if sqlDB != nil {
			sqlDB.Close()
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		store := "sqlstore"
		if name != "" {
			store += "(" + name + ")"
		}
		return nil, persist.RedactError(persist.Wrap(store, "Open "+persist.Redact(url), kind, err, retry), url)
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		name = "sqlite"
		dsnStr, memory, err := sqliteDSN(url)
		if err != nil {
			return fail(persist.ErrInvalid, err, false)
		}
		if !memory {
			path, _, _ := strings.Cut(dsnStr, "?")
			if dir := filepath.Dir(path); dir != "." {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					// As text: persist.IsRetryable takes any syscall.Errno
					// for a network error, and a missing directory is not
					// one to retry.
					return fail(nil, errors.New(err.Error()), false)
				}
			}
		}
		if sqlDB, err = sql.Open(sqlite.DriverName, dsnStr); err != nil {
			return fail(persist.ErrInvalid, err, false)
		}
		if memory {
			// Every connection to :memory: is a database of its own.
			sqlDB.SetMaxOpenConns(1)
			sqlDB.SetConnMaxLifetime(0)
			sqlDB.SetConnMaxIdleTime(0)
		}
		if err := sqlDB.PingContext(ctx); err != nil {
			kind, retry := classify(err)
			return fail(kind, err, retry)
		}
		gdb, openErr = gorm.Open(sqlite.Dialector{Conn: sqlDB}, gcfg)
	case "postgres", "postgresql":
		name = "postgres"
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			return fail(persist.ErrInvalid, err, false)
		}
		sqlDB = stdlib.OpenDB(*cfg)
		if err := sqlDB.PingContext(ctx); err != nil {
			return fail(persist.ErrUnavailable, err, true)
		}
		gdb, openErr = gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), gcfg)
	case "mysql", "mariadb":
		name = "mysql"
		d, err := dsn.MySQL(url)
		if err != nil {
			return fail(persist.ErrInvalid, err, false)
		}
		if sqlDB, err = sql.Open("mysql", d); err != nil {
			return fail(persist.ErrInvalid, err, false)
		}
		if err := sqlDB.PingContext(ctx); err != nil {
			return fail(persist.ErrUnavailable, err, true)
		}
		var version string
		if err := sqlDB.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			return fail(persist.ErrUnavailable, err, true)
		}
		gdb, openErr = gorm.Open(mysql.New(mysql.Config{Conn: sqlDB, ServerVersion: version, SkipInitializeWithVersion: true}), gcfg)
	default:
		return fail(persist.ErrInvalid, fmt.Errorf("unknown scheme %q (want sqlite, postgres, postgresql, mysql or mariadb)", scheme), false)
	}
	if openErr != nil {
		return fail(persist.ErrUnavailable, openErr, false)
	}
	s, err := New(gdb, opts)
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// sqliteDSN turns a sqlite: URL into the driver's DSN.
func sqliteDSN(u string) (dsnStr string, memory bool, err error) {
	_, rest, _ := strings.Cut(u, ":")
	rest = strings.TrimPrefix(rest, "//")
	path, query, _ := strings.Cut(rest, "?")
	if path == "" {
		return "", false, fmt.Errorf("no file name (want sqlite://path/to/file.db or sqlite::memory:)")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", false, fmt.Errorf("bad query: %v", err)
	}
	if path == ":memory:" {
		memory = true
	} else {
		if p, err := url.PathUnescape(path); err == nil {
			path = p
		}
		has := func(pragma string) bool {
			for _, v := range q["_pragma"] {
				if strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), pragma) {
					return true
				}
			}
			return false
		}
		if !has("busy_timeout") {
			q.Add("_pragma", "busy_timeout(10000)")
		}
		if !has("journal_mode") {
			q.Add("_pragma", "journal_mode(WAL)")
		}
		if !q.Has("_txlock") {
			q.Set("_txlock", "immediate")
		}
	}
	if len(q) == 0 {
		return path, memory, nil
	}
	return path + "?" + q.Encode(), memory, nil
}
