package sqlstore

import "strings"

// column is one column of a table as this package creates it.
type column struct {
	name    string
	kind    colKind
	notNull bool // only for new tables (the seeds' NOT NULL columns)
}

// index is one index; its name is the table name and suffix.
type index struct {
	suffix string
	unique bool
	cols   string // PostgreSQL and SQLite
	mysql  string // MySQL; "" means none
	where  string // PostgreSQL and SQLite: a partial index's condition
}

// tableSpec describes one table.
type tableSpec struct {
	name string
	cols []column
	// hash lists the columns of the unique key that MySQL keeps as a
	// generated SHA-256 column "ukey" (nil: none).
	hash []string
	idx  []index
	// stale are the suffixes of indexes an earlier version made on
	// PostgreSQL and SQLite, which Migrate drops once the ones that
	// replace them are made.
	stale []string
}

// hashCol is the name of MySQL's generated key hash column.
const hashCol = "ukey"

// specs returns the tables of the store.
func (s *Store) specs() []tableSpec {
	t := s.t
	topicIdx := []index{{suffix: "_topic_key", unique: true, cols: "topic"}}
	if !s.d.listens() {
		// The polling watch's reads (see watch.go); on PostgreSQL the
		// counter's updates leave changed alone (HOT updates).
		topicIdx = append(topicIdx, index{suffix: "_changed_idx", cols: "changed", mysql: "changed"})
	}
	specs := []tableSpec{
		{
			name: t.client,
			cols: []column{
				{"id", kSerial, false},
				{"clientid", kClientID, false},
				{"state", kState, false},
				{"node", kString, false},
				{"online_at", kTime, false},
				{"offline_at", kTime, false},
				{"created", kTime, false},
				{"username", kString, false},
				{"peerhost", kString, false},
				{"changed", kTime, false},
				{"released", kString, false},
			},
			hash: []string{"clientid"},
			idx: []index{
				{suffix: "_clientid_key", unique: true, cols: "clientid"},
				{suffix: "_clientid_idx", mysql: "clientid(255)"},
				{suffix: "_changed_idx", cols: "changed", mysql: "changed"},
			},
		},
		{
			name: t.sub,
			cols: []column{
				{"id", kSerial, false},
				{"clientid", kClientID, false},
				{"topic", kTopic, false},
				{"qos", kInt, false},
				{"created", kTime, false},
				{"no_local", kInt, false},
				{"retain_as_published", kInt, false},
				{"retain_handling", kInt, false},
				{"sub_id", kInt, false},
				{"start_id", kMsgID, false},
			},
			hash: []string{"clientid", "topic"},
			idx: []index{
				{suffix: "_clientid_topic_key", unique: true, cols: "clientid, topic"},
				{suffix: "_clientid_idx", mysql: "clientid(255)"},
			},
		},
		{
			name: t.msg,
			cols: []column{
				{"id", kSerial, false},
				{"msgid", kMsgID, false},
				{"topic", kTopic, true},
				{"sender", kClientID, false},
				{"node", kString, false},
				{"qos", kInt, true},
				{"retain", kInt, false},
				{"payload", kBlob, false},
				{"arrived", kTime, true},
				{"mode", kMode, false},
				{"expiry", kTime, false},
				{"username", kString, false},
				{"peerhost", kString, false},
				{"props", kText, false},
				{"claimed_by", kClientID, false},
				{"claim_until", kTime, false},
				{"seq", kSeq, false},
			},
			idx: []index{
				{suffix: "_msgid_key", unique: true, cols: "msgid", mysql: "msgid"},
				{suffix: "_topic_idx", cols: "topic, msgid", mysql: "topic(255), msgid"},
				{suffix: "_expiry_idx", cols: "expiry", mysql: "expiry"},
				{suffix: "_topic_seq_idx", cols: "topic, seq", mysql: "topic(255), seq"},
				// Rows without a position, which Migrate numbers (none
				// but those of an older version of this package).
				{suffix: "_noseq_idx", cols: "id", where: "seq IS NULL"},
			},
		},
		{
			name: t.retain,
			cols: []column{
				{"id", kSerial, false},
				{"topic", kTopic, false},
				{"msgid", kMsgID, false},
				{"sender", kClientID, false},
				{"node", kString, false},
				{"qos", kInt, false},
				{"payload", kBlob, false},
				{"arrived", kTime, false},
				{"expiry", kTime, false},
				{"props", kText, false},
				{"username", kString, false},
				{"peerhost", kString, false},
			},
			hash: []string{"topic"},
			idx: []index{
				{suffix: "_topic_key", unique: true, cols: "topic"},
				{suffix: "_topic_idx", mysql: "topic(255)"},
			},
		},
		{
			name: t.acked,
			cols: []column{
				{"id", kSerial, false},
				{"clientid", kClientID, false},
				{"topic", kTopic, false},
				{"mid", kMsgID, false},
				{"created", kTime, false},
				{"seq", kSeq, false},
				{"base_seq", kSeq, false},
				{"base_start", kMsgID, false},
			},
			hash: []string{"clientid", "topic"},
			idx: []index{
				{suffix: "_clientid_topic_key", unique: true, cols: "clientid, topic"},
				{suffix: "_noseq_idx", cols: "id", where: "seq IS NULL"},
			},
		},
		{
			name: t.topic,
			cols: []column{
				{"id", kSerial, false},
				{"topic", kTopic, true},
				{"seq", kSeq, true},
				{"changed", kTime, false},
				{"node", kString, false},
				{"n", kSeq, false},
			},
			hash: []string{"topic"},
			idx:  topicIdx,
		},
		{
			name: t.ackedMsg,
			cols: []column{
				{"id", kSerial, false},
				{"clientid", kClientID, true},
				{"msgid", kMsgID, true},
				{"topic", kTopic, true},
				{"acked_at", kTime, false},
				{"passed", kInt, true},
			},
			hash: []string{"clientid", "msgid"},
			idx: []index{
				{suffix: "_clientid_msgid_key", unique: true, cols: "clientid, msgid"},
				{suffix: "_clientid_msgid_idx", mysql: "clientid(255), msgid"},
				// A client's acks of one topic (PostgreSQL and SQLite: of one
				// message too, so that the unacked condition's probe is a
				// point look-up whichever index serves it; see unackedCond).
				{suffix: "_clientid_topic_idx", mysql: "clientid(255), topic(255)"},
				{suffix: "_clientid_topic_msgid_idx", cols: "clientid, topic, msgid"},
				{suffix: "_acked_at_idx", cols: "acked_at", mysql: "acked_at"},
			},
			stale: []string{"_clientid_topic_idx"},
		},
	}
	specs = append(specs, tableSpec{
		name: t.claim,
		cols: []column{
			{"id", kSerial, false},
			{"grp", kClientID, true},
			{"msgid", kMsgID, true},
			{"claimed_by", kClientID, true},
			{"claim_until", kTime, true},
		},
		hash: []string{"grp", "msgid"},
		idx: []index{
			{suffix: "_grp_msgid_key", unique: true, cols: "grp, msgid"},
			{suffix: "_until_idx", cols: "claim_until", mysql: "claim_until"},
		},
	})
	if s.d.listens() {
		specs = append(specs, tableSpec{
			name: t.watch,
			cols: []column{
				{"id", kSerial, false},
				{"channel", kString, true},
				{"topic", kTopic, true},
				{"beat", kTime, false},
			},
			idx: []index{
				{suffix: "_channel_topic_key", unique: true, cols: "channel, topic"},
			},
		})
	}
	return specs
}

// hashExpr is MySQL's expression for the key hash of cols.
func hashExpr(cols []string) string {
	if len(cols) == 1 {
		return "UNHEX(SHA2(" + cols[0] + ", 256))"
	}
	return "UNHEX(SHA2(CONCAT_WS(CHAR(0), " + strings.Join(cols, ", ") + "), 256))"
}
