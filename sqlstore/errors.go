package sqlstore

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mqttpersist/mqttpersist/persist"
)

// classify returns the persist kind of a database error (ErrUnavailable for
// a lost or refused connection, else nil) and whether trying again may
// succeed: connection failures, deadlocks, serialization failures, lock
// timeouts and busy SQLite databases may; constraint, syntax and data
// errors do not.
func classify(err error) (kind error, retryable bool) {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return persist.ErrUnavailable, true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return persist.ErrUnavailable, true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return persist.ErrUnavailable, true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "53300",                                         // too_many_connections
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, crash, cannot connect now
			return persist.ErrUnavailable, true
		case pe.Code == "40001", // serialization_failure
			pe.Code == "40P01", // deadlock_detected
			pe.Code == "55P03", // lock_not_available
			pe.Code == "53200", // out_of_memory
			pe.Code == "53100": // disk_full
			return nil, true
		}
		return nil, false
	}
	if pgconn.SafeToRetry(err) {
		return persist.ErrUnavailable, true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, // too many connections
			1053,                   // server shutdown
			1927,                   // connection killed (MariaDB)
			2002, 2003, 2006, 2013: // cannot connect, gone away, lost
			return persist.ErrUnavailable, true
		case 1205, // lock wait timeout
			1213,       // deadlock
			1614,       // transaction branch rolled back: deadlock
			3572,       // NOWAIT lock not acquired
			1180, 1181: // commit/rollback failed
			return nil, true
		}
		return nil, false
	}
	var se interface{ Code() int }
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // primary SQLite result code
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return nil, true
		case 10, 13: // SQLITE_IOERR, SQLITE_FULL
			return nil, true
		}
		return nil, false
	}
	if errors.Is(err, sql.ErrConnDone) {
		return persist.ErrUnavailable, true
	}
	return nil, false
}

// isDeadlock reports whether err is the database rolling back a transaction
// to break a deadlock or a serialization conflict (which changed nothing).
func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40P01" || pe.Code == "40001"
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213
	}
	return false
}
