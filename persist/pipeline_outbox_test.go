package persist_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/tidwall/wal"

	"github.com/mqttpersist/mqttpersist/persist"
)

// legacyRecords are outbox records as versions before the binary record
// wrote them (JSON, byte for byte): a client's state, its subscriptions,
// two messages and an ack of the first.
var legacyRecords = []string{
	`{"o":107,"k":{"ID":"c1","Username":"u","PeerHost":"10.0.0.2","Node":"n1","Online":true,"OnlineAt":"2026-11-30T12:00:00Z","OfflineAt":"0001-01-01T00:00:00Z"}}`,
	`{"o":115,"c":"c1","s":[{"Filter":"legacy/#","QoS":1,"NoLocal":false,"RetainAsPublished":false,"RetainHandling":0,"Identifier":0,"History":false,"Start":"01JDZ0000000000000000000A0"}],"x":["old/#"]}`,
	`{"o":112,"m":{"ID":"01JDZ0000000000000000000AA","Topic":"legacy/t","Payload":"AAECeA==","QoS":1,"Retain":false,"From":"pub","Username":"u","PeerHost":"10.0.0.1","Node":"n1","Time":"2026-11-30T12:00:00.123456789Z","Expiry":"2099-12-30T12:00:00Z","Mode":0,"Props":{"pf":1,"ct":"text/plain","rt":"re/t","cd":"Y2Q=","up":[{"k":"k","v":"v"},{"k":"k","v":"w"}]}},"u":"r1"}`,
	`{"o":112,"m":{"ID":"01JDZ0000000000000000000AB","Topic":"legacy/t","Payload":"AAECeQ==","QoS":1,"Retain":false,"From":"pub","Username":"u","PeerHost":"10.0.0.1","Node":"n1","Time":"2026-11-30T12:00:01.5Z","Expiry":"2099-12-30T12:00:00Z","Mode":0,"Props":{"pf":1,"ct":"text/plain","rt":"re/t","cd":"Y2Q=","up":[{"k":"k","v":"v"},{"k":"k","v":"w"}]}},"u":"r1"}`,
	`{"o":97,"c":"c1","a":[{"ID":"01JDZ0000000000000000000AA","Topic":"legacy/t"}]}`,
}

// An outbox that an earlier version left on disk, its records in JSON, is
// written to the store by this version, in order, with the binary records
// this version adds after them.
func TestPipelineReplaysJSONOutbox(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, &wal.Options{NoSync: true, SegmentSize: 4 << 20, AllowEmpty: true, NoCopy: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range legacyRecords {
		if err := l.Write(uint64(i+1), []byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	s := sqlite(t)
	o := &outage{Store: s}
	o.down.Store(true)
	opts := persist.PipelineOptions{Mode: persist.Async, Outbox: dir, MinBackoff: 5 * time.Millisecond, Drain: 50 * time.Millisecond}
	p1, err := persist.NewPipeline(o, &opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	fresh := &persist.Message{Topic: "legacy/t", Payload: []byte("binary"), QoS: 1}
	if err := p1.Publish(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if st := p1.Stats(); st.Queued != len(legacyRecords)+1 {
		t.Fatalf("outbox holds %d records, want %d", st.Queued, len(legacyRecords)+1)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}

	o.down.Store(false)
	opts.Drain = 0
	p2 := pipeline(t, o, opts)
	eventually(t, "the outbox to empty", func() bool { return p2.Stats().Queued == 0 })
	if st := p2.Stats(); st.Failed != 0 || st.Written != 4 {
		t.Fatalf("stats %+v, want 4 written (3 messages, 1 ack), none failed", st)
	}
	c, err := s.Client(ctx, "c1")
	if err != nil || !c.Online || c.Node != "n1" || c.PeerHost != "10.0.0.2" || !c.OnlineAt.Equal(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("client: %+v, %v", c, err)
	}
	subs, err := s.Subscriptions(ctx, "c1")
	if err != nil || len(subs) != 1 || subs[0].Filter != "legacy/#" || subs[0].QoS != 1 {
		t.Fatalf("subscriptions: %+v, %v", subs, err)
	}
	msgs, err := s.FetchOffline(ctx, "c1", "legacy/#", persist.Fetch{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if want := []string{"01JDZ0000000000000000000AB", fresh.ID}; !slices.Equal(ids, want) {
		t.Fatalf("fetched %v, want %v (the first legacy message was acked)", ids, want)
	}
	m := msgs[0]
	pf := m.Props.PayloadFormat
	if !bytes.Equal(m.Payload, []byte{0, 1, 2, 'y'}) || m.QoS != 1 || m.From != "pub" || m.Username != "u" ||
		m.PeerHost != "10.0.0.1" || m.Node != "n1" || !m.Time.Equal(time.Date(2026, 11, 30, 12, 0, 1, 5e8, time.UTC)) ||
		!m.Expiry.Equal(time.Date(2099, 12, 30, 12, 0, 0, 0, time.UTC)) || pf == nil || *pf != 1 ||
		m.Props.ContentType != "text/plain" || m.Props.ResponseTopic != "re/t" || string(m.Props.CorrelationData) != "cd" ||
		!slices.Equal(m.Props.User, []persist.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}) {
		t.Errorf("legacy message stored as %+v (props %+v)", m, m.Props)
	}
	if string(msgs[1].Payload) != "binary" {
		t.Errorf("binary record's message stored as %+v", msgs[1])
	}
}
