package mongostore

import (
	"context"
	"time"
)

// SweepGroupClaims runs DeleteExpired's sweep of group claims as if at t.
func SweepGroupClaims(s *Store, ctx context.Context, t time.Time) (int64, error) {
	return s.sweepGroupClaims(ctx, t)
}
