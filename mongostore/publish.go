package mongostore

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Publish stores a batch of messages (see persist.Store) with unordered
// InsertMany calls of up to chunkMessages messages and chunkBytes of
// payload (usually one), every
// document of a call stamped with the same time just before it is sent
// (field stored, see the package doc, # Skip nothing), while the store's
// writer document says it is writing since then. A message whose ID is
// stored already fails on the _id index and is left as it is. A message
// whose JSON payload the server refuses as a document is written again
// with the payload's bytes. Each call must end within
// Options.WriteTimeout of its stamp.
func (s *Store) Publish(ctx context.Context, msgs ...*persist.Message) error {
	const op = "Publish"
	msgs, err := s.kit.Publish(ctx, msgs) // checked, unexpired, each ID once
	if err != nil || len(msgs) == 0 {
		return err
	}
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && (n == 0 || n < chunkMessages && size+len(msgs[n].Payload) <= chunkBytes) {
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
// server finishes well within Options.WriteTimeout.
const chunkBytes = 4 << 20

// chunkMessages is the most messages one InsertMany of Publish carries.
const chunkMessages = 1000

// publishChunk stamps and inserts msgs.
func (s *Store) publishChunk(ctx context.Context, msgs []*persist.Message) error {
	docs := make([]any, len(msgs))
	for i, m := range msgs {
		docs[i] = messageDoc(m, time.Time{}, s.opt.PayloadFormat)
	}
	stamp, token, err := s.beginWrite(ctx)
	if err != nil {
		return err
	}
	handed := false // to the topic registry, which ends the write
	defer func() {
		if handed {
			return
		}
		if s.unacked() {
			// The server may apply an unacknowledged write later: the
			// store says it writes for as long as a write may take.
			time.AfterFunc(s.opt.WriteTimeout, func() { s.endWrite(token) })
			return
		}
		s.endWrite(token)
	}()
	wctx, cancel := context.WithDeadline(ctx, stamp.Add(s.opt.WriteTimeout))
	defer cancel()
	for _, d := range docs {
		restamp(d.(bson.D), stamp)
	}
	err = s.insert(wctx, docs, func(i int) any {
		return messageDoc(msgs[i], stamp, PlainText)
	})
	if err != nil {
		return err
	}
	handed, err = s.register(wctx, msgs, stamp, token)
	return err
}

// restamp sets the stored field (and its buckets) of a message document.
func restamp(d bson.D, stamp time.Time) {
	for i := range d {
		if d[i].Key == fStored {
			d[i].Value = bson.NewDateTimeFromTime(stamp)
		}
	}
	setBuckets(d, fStored, stamp)
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

// register records, on FerretDB, the stamp of the batch's topics in the
// topic registry, which polling watches read there instead of passing
// over mqtt_msg (see the package doc, # Watch); elsewhere it does
// nothing. The registry is written behind the Publish: at once, and the
// topics of the batches stored meanwhile in one write after it (the last
// writer of a topic wins). It takes the Publish's write token (handed) and
// ends the write once the registry holds its topics: until then the
// store's writer document says it writes since the Publish's stamp, and a
// polling watch reads the registry no further than that (see
// poller.poll), so a topic registered late is not passed over.
func (s *Store) register(ctx context.Context, msgs []*persist.Message, stamp time.Time, token uint64) (handed bool, err error) {
	info, err := s.server(ctx)
	if err != nil || !info.ferret {
		return false, err
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if s.reg == nil {
		s.reg = map[string]registration{}
	}
	for _, m := range msgs {
		r := s.reg[m.Topic]
		r.stamp = stamp
		r.add(m.Node)
		s.reg[m.Topic] = r
	}
	if !s.unacked() { // else the write ends WriteTimeout after it began
		s.regTokens = append(s.regTokens, token)
		handed = true
	}
	if !s.regRunning {
		s.regRunning = true
		s.regDone = make(chan struct{})
		go s.flushRegistry()
	}
	return handed, nil
}

// registration is a topic's stamp waiting to be written to the registry,
// with the nodes that published its messages since the last write.
type registration struct {
	stamp time.Time
	nodes []string
}

// add adds nodes to r's, each once.
func (r *registration) add(nodes ...string) {
	for _, n := range nodes {
		if !slices.Contains(r.nodes, n) {
			r.nodes = append(r.nodes, n)
		}
	}
}

// regID is the _id of a topic's registry document for node: a document
// per topic and node, so that a polling watch can tell when several nodes
// published to a topic since its previous poll (FerretDB 1.x applies
// concurrent updates of one document as whole-document writes, and one
// node's could replace another's). The node comes first, in hexadecimal:
// the first ":" ends it.
func regID(topic, node string) string { return hex.EncodeToString([]byte(node)) + ":" + topic }

// flushRegistry writes the pending registrations until none is left or
// the store is closed.
func (s *Store) flushRegistry() {
	defer close(s.regDone)
	for {
		s.regMu.Lock()
		pending, tokens := s.reg, s.regTokens
		s.reg, s.regTokens = nil, nil
		if len(pending) == 0 {
			s.regRunning = false
			s.regMu.Unlock()
			s.endWrites(tokens)
			return
		}
		s.regMu.Unlock()
		models := make([]mongo.WriteModel, 0, len(pending))
		for t, r := range pending {
			for _, n := range r.nodes {
				set := bson.D{{Key: fTopic, Value: t}, {Key: fNode, Value: n}, {Key: fStored, Value: bson.NewDateTimeFromTime(r.stamp)}}
				models = append(models, mongo.NewUpdateOneModel().
					SetFilter(bson.D{{Key: fID, Value: regID(t, n)}}).
					SetUpdate(bson.D{{Key: "$set", Value: bucketFields(set, fStored, r.stamp)}}).
					SetUpsert(true))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.bulk(ctx, s.topics, models)
		cancel()
		if err == nil || s.kit.Closed() {
			s.endWrites(tokens)
			continue
		}
		// Tried again with the next registrations (a newer stamp of a topic
		// replaces this one); the writes stay open meanwhile.
		s.regMu.Lock()
		if s.reg == nil {
			s.reg = map[string]registration{}
		}
		for t, r := range pending {
			if newer, ok := s.reg[t]; ok {
				r.stamp = newer.stamp
				r.add(newer.nodes...)
			}
			s.reg[t] = r
		}
		s.regTokens = append(s.regTokens, tokens...)
		s.regMu.Unlock()
		time.Sleep(registryRetry)
	}
}

// registryRetry is how long a failed registry write waits before the
// next.
const registryRetry = 200 * time.Millisecond

// endWrites ends the writes of tokens (see endWrite).
func (s *Store) endWrites(tokens []uint64) {
	for _, t := range tokens {
		s.endWrite(t)
	}
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
