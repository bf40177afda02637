package mochi

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type ctxKey struct{}

// A call's context ends as context.WithTimeout's would: at its deadline,
// with its parent, or when stopped, also when nothing asked before.
func TestCallCtx(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	defer cancelParent()
	const wait = 10 * time.Second // a hang, not a timing

	c := newCallCtx(parent, 20*time.Millisecond)
	if d, ok := c.Deadline(); !ok || d.IsZero() {
		t.Fatalf("Deadline() = %v, %v", d, ok)
	}
	if c.Value(ctxKey{}) != "v" {
		t.Fatal("the parent's value is lost")
	}
	var wg sync.WaitGroup
	for range 4 { // first asked from several goroutines at once
		wg.Go(func() {
			select {
			case <-c.Done():
			case <-time.After(wait):
				t.Error("Done not closed at the deadline")
			}
		})
	}
	wg.Wait()
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err() = %v after the deadline", c.Err())
	}
	c.stop()
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err() = %v after stop, want the deadline's", c.Err())
	}

	c = newCallCtx(parent, time.Hour)
	c.stop() // before anyone asked
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after stop")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err() = %v after stop", c.Err())
	}

	c = newCallCtx(parent, time.Hour)
	if c.Err() != nil {
		t.Fatalf("Err() = %v before the end", c.Err())
	}
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	cancelParent()
	select {
	case <-child.Done():
	case <-time.After(wait):
		t.Fatal("a context made from the call's did not end with the parent")
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err() = %v after the parent ended", c.Err())
	}
	c.stop()

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if c := newCallCtx(done, time.Hour); !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("Err() = %v with an ended parent", c.Err())
	}
}
