package persist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Sentinel errors. Errors returned by stores match them with errors.Is.
var (
	// ErrClosed is returned by a store or Router used after Close.
	ErrClosed = errors.New("persist: closed")
	// ErrNotFound is returned by lookups of something not stored.
	ErrNotFound = errors.New("persist: not found")
	// ErrInvalid is returned for bad input: an invalid topic, filter,
	// option, template or configuration. The message names what was wrong.
	ErrInvalid = errors.New("persist: invalid")
	// ErrUnsupported is returned by a store asked to do what it cannot.
	ErrUnsupported = errors.New("persist: unsupported")
	// ErrUnavailable is returned when a database cannot be reached.
	ErrUnavailable = errors.New("persist: unavailable")
)

// Error is the error stores return. It unwraps to both its Kind (a sentinel
// such as ErrNotFound) and the driver's error, so errors.Is(err, ErrClosed)
// and errors.As(err, &pgErr) both work.
type Error struct {
	// Store names the store, such as "sqlstore(postgres)".
	Store string
	// Op names the operation, such as "Publish".
	Op string
	// What names what the operation was about, such as `client "c"`
	// or `message 2 (topic "a/+")`; it may be empty.
	What string
	// Kind is a sentinel error, or nil.
	Kind error
	// Err is the underlying (driver) error, or nil.
	Err error
	// Retryable says whether trying the same operation again may succeed.
	Retryable bool
}

// Error returns "store: op what: err", leaving out the parts that are
// empty, such as `redisstore: FetchOffline client "c": invalid filter …`.
func (e *Error) Error() string {
	msg := ""
	switch {
	case e.Err != nil:
		msg = e.Err.Error()
	case e.Kind != nil:
		msg = e.Kind.Error()
	}
	prefix := e.Store
	if e.Op != "" {
		if prefix != "" {
			prefix += ": "
		}
		prefix += e.Op
	}
	if e.What != "" {
		if prefix != "" {
			prefix += " "
		}
		prefix += e.What
	}
	if prefix == "" {
		return msg
	}
	return prefix + ": " + msg
}

// Unwrap returns the kind and the underlying error.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, 2)
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// Wrap returns err as an *Error of store and op. A nil err gives nil;
// context errors pass through unwrapped, as does an err that already is an
// *Error. kind may be nil; retryable is also true when err is
// a timeout or network error.
func Wrap(store, op string, kind error, err error, retryable bool) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *Error
	if errors.As(err, &pe) {
		return err
	}
	if !retryable {
		retryable = isNetwork(err) || errors.Is(err, ErrUnavailable)
	}
	return &Error{Store: store, Op: op, Kind: kind, Err: err, Retryable: retryable}
}

// Errorf returns an error matching kind whose message is the formatted text.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// IsRetryable reports whether trying the operation that returned err again
// may succeed: an *Error marked retryable, a network error (see isNetwork),
// an error matching ErrUnavailable, or an error with a Timeout() method
// that says so. Context errors and ErrInvalid, ErrClosed,
// ErrUnsupported and ErrNotFound are not retryable.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, k := range []error{ErrInvalid, ErrClosed, ErrUnsupported, ErrNotFound} {
		if errors.Is(err, k) {
			return false
		}
	}
	var pe *Error
	if errors.As(err, &pe) && pe.Retryable {
		return true
	}
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	if isNetwork(err) {
		return true
	}
	var to interface{ Timeout() bool }
	return errors.As(err, &to) && to.Timeout()
}

// isNetwork reports whether err is a failure to reach or talk to a server:
// a *net.OpError or *net.DNSError, or a connection-level errno. It is
// narrower than net.Error, which every syscall.Errno satisfies (so a
// missing file would otherwise look like a network error).
func isNetwork(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	if errors.As(err, &op) || errors.As(err, &dns) {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
