package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// serverInfo is what the store found of the server it talks to.
type serverInfo struct {
	// ferret: FerretDB (buildInfo names a ferretdbVersion). FerretDB 1.x
	// passes only top-level equality to its database and filters the rest
	// (ranges among it) in memory after reading the whole collection, so
	// the store reads date ranges there by their buckets (see since); it
	// also answers unacknowledged writes (see writers).
	ferret bool
}

// server returns what the server is, asking it (buildInfo) the first
// time; a failure is not kept, so the next call asks again.
func (s *Store) server(ctx context.Context) (serverInfo, error) {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	if s.info != nil {
		return *s.info, nil
	}
	var bi bson.Raw
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err != nil {
		return serverInfo{}, err
	}
	_, err := bi.LookupErr("ferretdbVersion")
	s.info = &serverInfo{ferret: err == nil}
	return *s.info, nil
}

// Buckets of a date field: besides the date, a document holds it in whole
// seconds, minutes, hours and days since the Unix epoch (fields
// <field>_s, _m, _h and _d), which a server that filters ranges in memory
// can select by equality (see since).
var buckets = []struct {
	suffix string
	size   time.Duration
}{
	{"_s", time.Second}, {"_m", time.Minute}, {"_h", time.Hour}, {"_d", 24 * time.Hour},
}

// aheadMargin is how far past now the buckets since reads go.
const aheadMargin = 3 * time.Second

// Bucket queries: a read of messages sends up to readBuckets equality
// queries for one range, a poll of a watch up to pollBuckets (it runs
// often, on small collections).
const (
	readBuckets = 16
	pollBuckets = 2
)

// bucketFields appends the bucket fields of date t (field f) to d.
func bucketFields(d bson.D, f string, t time.Time) bson.D {
	ms := t.UnixMilli()
	for _, b := range buckets {
		d = append(d, bson.E{Key: f + b.suffix, Value: floorDiv(ms, b.size.Milliseconds())})
	}
	return d
}

// setBuckets sets the bucket fields of date t (field f) in d, which has
// them.
func setBuckets(d bson.D, f string, t time.Time) {
	ms := t.UnixMilli()
	for i := range d {
		for _, b := range buckets {
			if d[i].Key == f+b.suffix {
				d[i].Value = floorDiv(ms, b.size.Milliseconds())
			}
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// since returns the filters that together select the documents of base
// whose date field f is at or after from: base with a range on f, or on
// FerretDB base with an equality on f's bucket fields, one filter per
// bucket from from's to now's at the finest bucket size that needs no
// more than max of them (base alone when none does). What a bucket holds
// before from, the caller leaves out.
func (s *Store) since(ctx context.Context, base bson.D, f string, from time.Time, max int64) ([]bson.D, error) {
	info, err := s.server(ctx)
	if err != nil {
		return nil, err
	}
	with := func(e bson.E) bson.D {
		d := make(bson.D, 0, len(base)+1)
		return append(append(d, base...), e)
	}
	if !info.ferret {
		return []bson.D{with(bson.E{Key: f, Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(from)}}})}, nil
	}
	// A little past now: the clocks of other nodes may be ahead (a
	// document stamped further ahead is read once this clock is near).
	to := time.Now().Add(aheadMargin).UnixMilli()
	for _, b := range buckets {
		size := b.size.Milliseconds()
		lo, hi := floorDiv(from.UnixMilli(), size), floorDiv(to, size)
		if hi-lo+1 > max {
			continue
		}
		out := make([]bson.D, 0, hi-lo+1)
		for v := lo; v <= hi; v++ {
			out = append(out, with(bson.E{Key: f + b.suffix, Value: v}))
		}
		return out, nil
	}
	return []bson.D{base}, nil
}

// findAll runs the queries filters on coll at once and returns every
// document found (the filters select apart: no document twice).
func findAll(ctx context.Context, coll *mongo.Collection, filters []bson.D, opts ...options.Lister[options.FindOptions]) ([]bson.Raw, error) {
	results, err := findEach(ctx, coll, filters, opts...)
	if err != nil {
		return nil, err
	}
	var out []bson.Raw
	for _, r := range results {
		out = append(out, r...)
	}
	return out, nil
}

// findEach runs the queries filters on coll at once and returns what each
// found.
func findEach(ctx context.Context, coll *mongo.Collection, filters []bson.D, opts ...options.Lister[options.FindOptions]) ([][]bson.Raw, error) {
	results := make([][]bson.Raw, len(filters))
	fns := make([]func() error, len(filters))
	sem := make(chan struct{}, maxParallelQueries)
	for i, f := range filters {
		fns[i] = func() error {
			sem <- struct{}{}
			defer func() { <-sem }()
			cur, err := coll.Find(ctx, f, opts...)
			if err != nil {
				return err
			}
			return cur.All(ctx, &results[i])
		}
	}
	if err := parallel(fns...); err != nil {
		return nil, err
	}
	return results, nil
}

// maxParallelQueries is the most queries of one findEach that run at
// once.
const maxParallelQueries = 4

// ferretBulk is the most writes of one bulk write to FerretDB: it keeps
// every update's query open (a connection of its pool) until the whole
// command ends, so a long one exhausts the pool and stops the server.
const ferretBulk = 4

// bulk runs models on coll unordered (on FerretDB ferretBulk at a time)
// and returns the indexes of those that failed on a duplicate key; any
// other failure is an error.
func (s *Store) bulk(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel) (map[int]bool, error) {
	info, err := s.server(ctx)
	if err != nil {
		return nil, err
	}
	size := len(models)
	if info.ferret {
		size = ferretBulk
	}
	dups := map[int]bool{}
	for off := 0; off < len(models); off += size {
		chunk := models[off:min(off+size, len(models))]
		_, err := coll.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
		if err == nil {
			continue
		}
		d, ok := onlyDuplicates(err)
		if !ok {
			return nil, err
		}
		for i := range d {
			dups[off+i] = true
		}
	}
	return dups, nil
}
