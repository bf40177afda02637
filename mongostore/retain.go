package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Retain sets, replaces or (with an empty payload) deletes the retained
// message of m.Topic: one document per topic (unique index on topic),
// replaced whole with an upsert.
func (s *Store) Retain(ctx context.Context, m *persist.Message) error {
	const op = "Retain"
	if err := s.kit.Retain(ctx, m); err != nil {
		return err
	}
	what := fmt.Sprintf("topic %q", m.Topic)
	filter := bson.D{{Key: fTopic, Value: m.Topic}}
	if len(m.Payload) == 0 {
		_, retainW := s.writers(ctx)
		_, err := retainW.DeleteOne(ctx, filter)
		return s.fail(ctx, op, s.what(what, err))
	}
	wctx, cancel := context.WithTimeout(ctx, s.opt.WriteTimeout)
	defer cancel()
	doc := messageFields(make(bson.D, 0, 16), m, s.opt.PayloadFormat)
	err := s.replaceRetained(wctx, filter, doc)
	if err != nil && isWriteError(err) {
		// A JSON payload the server refuses as a document: keep its bytes.
		if plain := messageFields(make(bson.D, 0, 16), m, PlainText); !sameDoc(plain, doc) {
			err = s.replaceRetained(wctx, filter, plain)
		}
	}
	return s.fail(ctx, op, s.what(what, err))
}

// replaceRetained upserts a retained document. Two upserts of one topic
// at once may both try to insert (the unique index lets one in): the
// other then replaces.
func (s *Store) replaceRetained(ctx context.Context, filter, doc bson.D) error {
	_, retainW := s.writers(ctx)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		_, err = retainW.ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(true))
		if err == nil || !mongo.IsDuplicateKeyError(err) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return err
}

// isWriteError reports whether err is a server's refusal of a document
// (not a duplicate key).
func isWriteError(err error) bool {
	var we mongo.WriteException
	return errors.As(err, &we) && len(we.WriteErrors) > 0 && !mongo.IsDuplicateKeyError(err)
}

// Retained returns the retained messages whose topic matches filter,
// ordered by topic byte-wise; expired ones are left out.
func (s *Store) Retained(ctx context.Context, filter string) ([]*persist.Message, error) {
	const op = "Retained"
	q, err := s.kit.Retained(ctx, filter)
	if err != nil {
		return nil, err
	}
	f := topicQuery(fTopic, q.Match)
	if f == nil {
		f = bson.D{}
	}
	cur, err := s.lookupRetain.Find(ctx, f)
	if err != nil {
		return nil, s.fail(ctx, op, s.what(fmt.Sprintf("filter %q", filter), err))
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var all []*persist.Message
	for cur.Next(ctx) {
		st, err := decodeMessage(cur.Current)
		if err != nil {
			return nil, s.fail(ctx, op, err)
		}
		all = append(all, st.m)
	}
	if err := cur.Err(); err != nil {
		return nil, s.fail(ctx, op, s.what(fmt.Sprintf("filter %q", filter), err))
	}
	return q.FinishRetained(all), nil
}
