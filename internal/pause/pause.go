// Package pause waits a while unless a context ends first: the back-off
// of the Pipeline's and the Hook's retries.
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx ends; it reports whether it waited d (false
// at once when ctx has ended already).
func For(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
