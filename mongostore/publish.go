package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Publish stores a batch of messages (see persist.Store) with unordered
// InsertMany calls of up to chunkBytes of payload (usually one), every
// document of a call stamped with the same time just before it is sent
// (field stored, see the package doc, # Skip nothing). A message whose
// ID is stored already fails on the _id index and is left as it is. A
// message whose JSON payload the server refuses as a document is written
// again with the payload's bytes. Each call gets half of Options.Settle at
// most.
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	const op = "Publish"
	msgs, err := s.kit.Publish(ctx, msgs) // checked, unexpired, each ID once
	if err != nil || len(msgs) == 0 {
		return err
	}
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && (n == 0 || size+len(msgs[n].Payload) <= chunkBytes) {
			size += len(msgs[n].Payload)
			n++
		}
		if err := s.publishChunk(ctx, msgs[:n]); err != nil {
			return s.fail(ctx, op, err)
		}
		msgs = msgs[n:]
	}
	return nil
}

// chunkBytes is the most payload bytes one InsertMany of Publish carries
// (it carries one message at least): a write of its own stamp that the
// server finishes well within Options.Settle.
const chunkBytes = 4 << 20

// publishChunk stamps and inserts msgs.
func (s *Store) publishChunk(ctx context.Context, msgs []*persist.Message) error {
	docs := make([]any, len(msgs))
	for i, m := range msgs {
		docs[i] = messageDoc(m, time.Time{}, s.opt.PayloadFormat)
	}
	wctx, cancel := context.WithTimeout(ctx, s.opt.Settle/2)
	defer cancel()
	stamp := bson.NewDateTimeFromTime(s.nextStamp())
	for _, d := range docs {
		restamp(d.(bson.D), stamp)
	}
	return s.insert(wctx, docs, func(i int) any {
		d := messageDoc(msgs[i], time.Time{}, PlainText)
		restamp(d, stamp)
		return d
	})
}

// restamp sets the stored field of a message document.
func restamp(d bson.D, stamp bson.DateTime) {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].Key == fStored {
			d[i].Value = stamp
			return
		}
	}
}

// insert writes docs to mqtt_msg unordered: duplicate keys are success
// (the message is stored), and a document refused otherwise is written
// again once as plain(i) when that differs (its payload as bytes).
func (s *Store) insert(ctx context.Context, docs []any, plain func(i int) any) error {
	msgW, _ := s.writers(ctx)
	_, err := msgW.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil
	}
	wes, only := writeErrors(err)
	if !only {
		return err
	}
	var again []any
	var first error
	for i, we := range wes {
		if we.Code == codeDuplicateKey {
			continue
		}
		p := plain(i)
		if !sameDoc(p, docs[i]) {
			again = append(again, p)
		} else if first == nil {
			first = fmt.Errorf("message %d: %w", i, we)
		}
	}
	if first != nil {
		return first
	}
	if len(again) == 0 {
		return nil
	}
	_, err = msgW.InsertMany(ctx, again, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil
	}
	if _, ok := onlyDuplicates(err); ok {
		return nil
	}
	return err
}

// sameDoc reports whether a and b (bson.D) encode alike.
func sameDoc(a, b any) bool {
	ra, err1 := bson.Marshal(a)
	rb, err2 := bson.Marshal(b)
	return err1 == nil && err2 == nil && string(ra) == string(rb)
}

// positionOf returns a message's position: its stamp and ID.
func positionOf(st stored) position { return position{t: st.stored, id: st.m.ID} }

// position is where a fanout message sits in its topic: the stamp of the
// Publish that stored it, then its ID.
type position struct {
	t  time.Time
	id string
}

// after reports whether p comes after q.
func (p position) after(q position) bool {
	if !p.t.Equal(q.t) {
		return p.t.After(q.t)
	}
	return p.id > q.id
}
