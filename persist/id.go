package persist

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// IDs are ULIDs (github.com/oklog/ulid/v2): 48 bits of milliseconds and 80
// bits of entropy, written as 26 characters of Crockford base32, so they are
// unique across nodes without coordination and sort, as strings, in the
// order they were made. Within one process they are strictly increasing,
// also within one millisecond (monotonic entropy). Across nodes the order is
// as good as the nodes' clocks.

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
	idLast    ulid.ULID
	idNext    ulid.ULID // NewIDAt's scratch
)

// IDLen is the length of every ID made by NewID.
const IDLen = ulid.EncodedSize

// NewID returns a new message ID, greater than every ID this process made
// before.
func NewID() string {
	return NewIDAt(time.Now())
}

// NewIDAt returns a new ID for time t, greater than every ID this process
// made before (if t is earlier than the last ID's time, the last time is
// used).
func NewIDAt(t time.Time) string {
	idMu.Lock()
	defer idMu.Unlock()
	ms := ulid.Timestamp(t)
	if ms < idLast.Time() {
		ms = idLast.Time()
	}
	// As ulid.New, into idNext rather than a ULID on the heap (the
	// entropy reader would make one escape).
	err := idNext.SetTime(ms)
	if err == nil {
		err = idEntropy.MonotonicRead(ms, idNext[6:])
	}
	id := idNext
	if err != nil {
		// Entropy overflow within one millisecond (2^80 IDs) or a broken
		// random source: move on to the next millisecond.
		id = ulid.MustNew(idLast.Time()+1, rand.Reader)
	}
	idLast = id
	return id.String()
}

// MinIDAt returns the smallest ID of time t: every ID made at or after t
// sorts after it (or equal), every ID made before t sorts before it. Stores
// use it to turn a time into an ID bound.
func MinIDAt(t time.Time) string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	return id.String()
}

// IDTime returns the time encoded in an ID made by NewID, and false if id
// is not such an ID.
func IDTime(id string) (time.Time, bool) {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()), true
}
