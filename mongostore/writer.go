package mongostore

import (
	"context"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Fields of a writer document (mqtt_writer): one per Store value, which
// alone writes it (so it needs no atomic update), saying since when it
// may have a Publish writing (see the package doc, # Skip nothing).
const (
	wSince = "since" // the stamp of its oldest Publish still writing (a date), or null: none
	wAt    = "at"    // when the document was written (a date)
)

// writerDebounce is how long after a Publish ended its store's writer
// document is brought up to date (a later stamp, or none).
const writerDebounce = 20 * time.Millisecond

// writerState is what a store knows of its writer document.
type writerState struct {
	mu       sync.Mutex // held to begin a write, and to write the document saying none
	inflight map[uint64]time.Time
	next     uint64
	doc      time.Time // what the document says: zero for none
	pending  bool      // an update is scheduled
	closed   bool

	updMu sync.Mutex // one update of the document at a time
}

// beginWrite returns the stamp of a write of Publish and a token for
// endWrite. When the store's writer document says it writes nothing, it
// first writes one saying it writes since now, and stamps after that is
// stored: a fetch that read the document before sees a stamp later than
// its own clock (less the clock skew), one that read it after waits for
// the write.
func (s *Store) beginWrite(ctx context.Context) (time.Time, uint64, error) {
	w := &s.wr
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.doc.IsZero() {
		since := now()
		if err := s.putWriter(ctx, since); err != nil {
			return time.Time{}, 0, err
		}
		w.doc = since
	}
	stamp := s.nextStamp()
	if w.inflight == nil {
		w.inflight = map[uint64]time.Time{}
	}
	w.next++
	w.inflight[w.next] = stamp
	return stamp, w.next, nil
}

// endWrite ends the write of token and schedules the update of the
// writer document.
func (s *Store) endWrite(token uint64) {
	w := &s.wr
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inflight, token)
	if !w.pending && !w.closed {
		w.pending = true
		time.AfterFunc(writerDebounce, s.updateWriter)
	}
}

// updateWriter brings the writer document up to date: the stamp of the
// oldest write still running, or none. Moving the stamp on needs no lock
// (writes that begin meanwhile stamp later); saying none holds w.mu, so
// that no write begins believing the document says it writes.
func (s *Store) updateWriter() {
	w := &s.wr
	w.updMu.Lock()
	defer w.updMu.Unlock()
	w.mu.Lock()
	w.pending = false
	if w.closed {
		w.mu.Unlock()
		return
	}
	var oldest time.Time
	for _, t := range w.inflight {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.Equal(w.doc) {
		w.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.WriteTimeout)
	defer cancel()
	if oldest.IsZero() {
		defer w.mu.Unlock()
		if s.putWriter(ctx, time.Time{}) == nil {
			w.doc = time.Time{}
		} else if !w.pending {
			w.pending = true
			time.AfterFunc(time.Second, s.updateWriter)
		}
		return
	}
	w.mu.Unlock()
	err := s.putWriter(ctx, oldest)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil && !w.doc.IsZero() && oldest.After(w.doc) {
		w.doc = oldest
	}
}

// putWriter writes the store's writer document: writing since since, or
// nothing (zero).
func (s *Store) putWriter(ctx context.Context, since time.Time) error {
	var v any
	if !since.IsZero() {
		v = bson.NewDateTimeFromTime(since)
	}
	_, err := s.writer.UpdateOne(ctx, bson.D{{Key: "_id", Value: s.writerID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: wSince, Value: v}, {Key: wAt, Value: bson.NewDateTimeFromTime(now())}}}},
		options.UpdateOne().SetUpsert(true))
	return err
}

// retireWriter deletes the store's writer document (Close): it writes no
// more.
func (s *Store) retireWriter() {
	w := &s.wr
	w.updMu.Lock()
	defer w.updMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.doc.IsZero() && w.next == 0 {
		return // never wrote one
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.writer.DeleteOne(ctx, bson.D{{Key: "_id", Value: s.writerID}})
}

// horizon reads the writer documents and returns the settled horizon of
// a fetch made at t: a watermark passes only messages stamped before it.
// It is twice Options.ClockSkew before t, and no later than the oldest
// stamp a store says it is writing since — but that no earlier than
// Options.WriteTimeout before the horizon (a write that old is readable,
// or failed; a store that stopped while writing holds fetches back no
// further).
func (s *Store) horizon(ctx context.Context, t time.Time) (time.Time, error) {
	cur, err := s.writer.Find(ctx, bson.D{{Key: wSince, Value: bson.D{{Key: "$ne", Value: nil}}}})
	if err != nil {
		return time.Time{}, err
	}
	var docs []bson.Raw
	if err := cur.All(ctx, &docs); err != nil {
		return time.Time{}, err
	}
	h := t.Add(-2 * s.opt.ClockSkew)
	floor := h.Add(-s.opt.WriteTimeout)
	for _, d := range docs {
		ms, ok := d.Lookup(wSince).DateTimeOK()
		if !ok {
			continue
		}
		since := time.UnixMilli(ms)
		if since.Before(floor) {
			since = floor
		}
		if since.Before(h) {
			h = since
		}
	}
	return h, nil
}
