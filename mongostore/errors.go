package mongostore

import (
	"context"
	"errors"
	"net"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Server error codes this package reads.
const (
	codeDuplicateKey   = 11000
	codeNamespaceExist = 48
	codeNotImplemented = 238
	codeCommandMissing = 59
	codeIllegalOp      = 20
	codeIndexConflict  = 85 // IndexOptionsConflict: same keys, other options
	codeIndexKeySpec   = 86 // IndexKeySpecsConflict: same name, other keys
)

// transient are the server error codes after which the same operation may
// succeed: a primary stepping down or not elected yet, a shutting down or
// unreachable host, an interrupted or timed-out operation, a write
// conflict, a lock timeout.
var transient = map[int]bool{
	6: true, 7: true, 24: true, 89: true, 91: true, 112: true, 189: true, 262: true,
	9001: true, 10107: true, 11600: true, 11602: true, 13435: true, 13436: true,
}

// classify returns the persist kind of a MongoDB error (ErrUnavailable for
// a lost, refused or unselectable server, else nil) and whether trying
// again may succeed: network errors, timeouts, server selection failures,
// the transient server codes and errors labelled retryable may; other
// server errors (duplicate keys, validation, unknown commands) do not, nor
// does a client the caller disconnected.
func classify(err error) (kind error, retryable bool) {
	if errors.Is(err, mongo.ErrClientDisconnected) {
		return nil, false
	}
	if mongo.IsNetworkError(err) || strings.Contains(err.Error(), "server selection error") {
		return persist.ErrUnavailable, true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return persist.ErrUnavailable, true
	}
	if mongo.IsTimeout(err) {
		return nil, true
	}
	var le mongo.LabeledError
	if errors.As(err, &le) && (le.HasErrorLabel("RetryableWriteError") || le.HasErrorLabel("TransientTransactionError")) {
		return persist.ErrUnavailable, true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for code := range transient {
			if se.HasErrorCode(code) {
				return persist.ErrUnavailable, true
			}
		}
	}
	return nil, false
}

// hasCode reports whether err is a server error with one of codes.
func hasCode(err error, codes ...int) bool {
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.HasErrorCode(c) {
			return true
		}
	}
	return false
}

// unsupported reports whether err says the server lacks a command or an
// option (FerretDB says NotImplemented; other servers CommandNotFound,
// IllegalOperation or a message saying so).
func unsupported(err error) bool {
	if hasCode(err, codeNotImplemented, codeCommandMissing, codeIllegalOp) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "not implemented") || strings.Contains(msg, "not supported") ||
		strings.Contains(msg, "unsupported")
}

// writeErrors returns the write errors of an insert or bulk write by the
// index of their write, and whether err holds nothing else (no write
// concern error, no other failure).
func writeErrors(err error) (map[int]mongo.WriteError, bool) {
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		out := make(map[int]mongo.WriteError, len(bwe.WriteErrors))
		for _, we := range bwe.WriteErrors {
			out[we.Index] = we.WriteError
		}
		return out, bwe.WriteConcernError == nil
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		out := make(map[int]mongo.WriteError, len(we.WriteErrors))
		for _, e := range we.WriteErrors {
			out[e.Index] = e
		}
		return out, we.WriteConcernError == nil && len(we.WriteErrors) > 0
	}
	return nil, false
}

// onlyDuplicates reports whether every write of err failed on a
// duplicate key (and nothing else failed), returning their indexes.
func onlyDuplicates(err error) (map[int]bool, bool) {
	wes, only := writeErrors(err)
	if !only {
		return nil, false
	}
	dup := make(map[int]bool, len(wes))
	for i, we := range wes {
		if we.Code != codeDuplicateKey {
			return nil, false
		}
		dup[i] = true
	}
	return dup, true
}

// fail is the kit's Fail for a driver error. The driver reports its own
// timeouts (server selection, a socket's deadline) as errors matching
// context.DeadlineExceeded, which the kit and persist.IsRetryable take for
// the caller's context ending; while ctx is not done such an error is
// given as an unavailable server instead (its text kept).
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil || ctx.Err() != nil {
		return s.kit.Fail(ctx, op, err)
	}
	if pe, ok := err.(*persist.Error); ok && pe.Err != nil && errors.Is(pe.Err, context.DeadlineExceeded) {
		c := *pe
		c.Err, c.Kind, c.Retryable = &driverTimeout{msg: pe.Err.Error()}, persist.ErrUnavailable, true
		return s.kit.Fail(ctx, op, &c)
	}
	if _, ok := err.(*persist.Error); !ok && errors.Is(err, context.DeadlineExceeded) {
		return s.kit.Fail(ctx, op, &persist.Error{Kind: persist.ErrUnavailable, Err: &driverTimeout{msg: err.Error()}, Retryable: true})
	}
	return s.kit.Fail(ctx, op, err)
}

// driverTimeout is a timeout of the driver's own (not of the caller's
// context): the server did not answer in time.
type driverTimeout struct{ msg string }

func (e *driverTimeout) Error() string { return e.msg }

// Timeout reports true.
func (e *driverTimeout) Timeout() bool { return true }
