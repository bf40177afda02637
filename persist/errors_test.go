package persist_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

type driverErr struct{ code string }

func (e *driverErr) Error() string { return "driver: " + e.code }

func TestWrapUnwrapsToKindAndDriverError(t *testing.T) {
	d := &driverErr{code: "23505"}
	err := persist.Wrap("sqlstore(postgres)", "Publish", persist.ErrInvalid, d, false)
	if !errors.Is(err, persist.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var got *driverErr
	if !errors.As(err, &got) || got.code != "23505" {
		t.Errorf("errors.As to the driver error failed: %v", err)
	}
	if want := "sqlstore(postgres): Publish: driver: 23505"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if persist.IsRetryable(err) {
		t.Errorf("an invalid-input error is retryable")
	}
	if persist.Wrap("s", "op", nil, nil, true) != nil {
		t.Errorf("Wrap of nil is not nil")
	}
}

func TestWrapPassesContextErrorsThrough(t *testing.T) {
	for _, ce := range []error{context.Canceled, context.DeadlineExceeded} {
		if err := persist.Wrap("s", "op", persist.ErrUnavailable, ce, true); err != ce {
			t.Errorf("Wrap(%v) = %#v, want the context error itself", ce, err)
		}
	}
}

func TestIsRetryable(t *testing.T) {
	_, missing := os.Open("/nonexistent/mqttpersist")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", refused, true},
		{"wrapped refused", fmt.Errorf("ping: %w", refused), true},
		{"reset errno", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"dns", &net.DNSError{Err: "no such host", Name: "db"}, true},
		{"unavailable", persist.Errorf(persist.ErrUnavailable, "down"), true},
		{"marked retryable", persist.Wrap("s", "op", nil, errors.New("deadlock"), true), true},
		{"missing file is not a network error", missing, false},
		{"not found errno", fmt.Errorf("x: %w", fs.ErrNotExist), false},
		{"plain", errors.New("syntax error"), false},
		{"invalid even if marked", persist.Wrap("s", "op", persist.ErrInvalid, errors.New("bad"), true), false},
		{"closed", persist.ErrClosed, false},
		{"cancelled", context.Canceled, false},
		{"deadline", fmt.Errorf("q: %w", context.DeadlineExceeded), false},
	}
	for _, tt := range tests {
		if got := persist.IsRetryable(tt.err); got != tt.want {
			t.Errorf("%s: IsRetryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
