package redisstore

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// classify returns the persist kind of a Redis error (ErrUnavailable for a
// lost or refused connection, else nil) and whether trying again
// may succeed: connection failures, timeouts, an exhausted pool and the
// server's transient states (LOADING, BUSY, TRYAGAIN, CLUSTERDOWN,
// MASTERDOWN, READONLY after a failover) may; other server errors (WRONGTYPE,
// OOM, syntax) do not.
func classify(err error) (kind error, retryable bool) {
	if errors.Is(err, redis.ErrClosed) {
		// The caller closed the client it passed to New: no use trying
		// again (and persist counts every ErrUnavailable as retryable).
		return nil, false
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := strings.TrimPrefix(re.Error(), "ERR ")
		for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "NOREPLICAS"} {
			if strings.HasPrefix(msg, p) {
				return persist.ErrUnavailable, true
			}
		}
		return nil, false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return persist.ErrUnavailable, true
	}
	if strings.Contains(err.Error(), "connection pool timeout") {
		return persist.ErrUnavailable, true
	}
	return nil, false
}
