package mongostore

import (
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// Default collection names: the seeds' five, then this package's.
const (
	DefaultClientCollection       = "mqtt_client"
	DefaultSubscriptionCollection = "mqtt_sub"
	DefaultMessageCollection      = "mqtt_msg"
	DefaultRetainCollection       = "mqtt_retain"
	DefaultAckCollection          = "mqtt_acked"
	// DefaultAckedMsgCollection holds the fanout acks above a client's
	// watermark, one document per acknowledged message.
	DefaultAckedMsgCollection = "mqtt_acked_msg"
	// DefaultClaimCollection holds the claims of queue messages.
	DefaultClaimCollection = "mqtt_claim"
	// DefaultTopicCollection holds, on FerretDB, each topic's last Publish
	// stamp, which polling watches read (see Store.Watch).
	DefaultTopicCollection = "mqtt_topic"
	// DefaultWriterCollection holds each store value's oldest Publish
	// still writing (see the package doc, # Skip nothing).
	DefaultWriterCollection = "mqtt_writer"
	// DefaultGroupClaimCollection holds the claims of shared subscription
	// groups' messages (see Store.Claim).
	DefaultGroupClaimCollection = "mqtt_group_claim"
)

// PayloadFormat says how a payload is stored in the payload field of
// mqtt_msg and mqtt_retain (the seeds' payload_format). Whatever the
// format, a payload comes back byte for byte.
type PayloadFormat string

const (
	// MongoJSON stores a payload that is a JSON object or array as a
	// document or array, so that it can be queried
	// (db.mqtt_msg.find({"payload.temp": {$gt: 20}})); other text as a
	// string; anything else as binary. The exact bytes are kept beside
	// the document (payload_raw) when the document would not give them
	// back as they were (whitespace, escapes, number forms), and a JSON
	// payload the server cannot keep as a document (keys starting with
	// '$' or holding '.', empty or repeated keys, deep nesting, U+0000) is
	// stored as binary.
	MongoJSON PayloadFormat = "mongo_json"
	// PlainText stores a payload of valid UTF-8 (without U+0000) as a
	// string, anything else as binary.
	PlainText PayloadFormat = "plain_text"
)

// Defaults of Options.
const (
	// DefaultClockSkew is Options.ClockSkew's default.
	DefaultClockSkew = 500 * time.Millisecond
	// DefaultWriteTimeout is Options.WriteTimeout's default.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultPollInterval is Options.PollInterval's default.
	DefaultPollInterval = 50 * time.Millisecond
	// DefaultAckGrace is Options.AckGrace's default.
	DefaultAckGrace = time.Hour
)

// Limits of what the collections keep, in bytes; longer input is rejected
// with an error matching persist.ErrInvalid before anything is written.
// Client IDs, topics and node names are index keys, and compound index
// keys must stay within what the servers index (PostgreSQL, behind
// FerretDB, keeps some 2700 bytes in an index entry).
const (
	// MaxTopicLen is the longest topic name or filter.
	MaxTopicLen = 1024
	// MaxClientIDLen is the longest client ID.
	MaxClientIDLen = 1024
	// MaxStringLen is the longest node name, username, peer host or
	// publisher client ID.
	MaxStringLen = 1024
	// MaxIDLen is the longest message ID (IDs from persist.NewID have 26).
	MaxIDLen = 64
	// MaxPayloadLen is the largest payload: a document is at most 16 MiB.
	MaxPayloadLen = 15 << 20
)

// Options configure a Store; the zero value and nil mean the defaults.
type Options struct {
	// CollectionPrefix is put before every default collection name: "t1_"
	// gives t1_mqtt_client, t1_mqtt_sub, ... It does not apply to the
	// names set below.
	CollectionPrefix string
	// ClientCollection, SubscriptionCollection, MessageCollection,
	// RetainCollection, AckCollection, AckedMsgCollection, ClaimCollection,
	// TopicCollection, WriterCollection and GroupClaimCollection replace a
	// collection name entirely.
	ClientCollection       string
	SubscriptionCollection string
	MessageCollection      string
	RetainCollection       string
	AckCollection          string
	AckedMsgCollection     string
	ClaimCollection        string
	TopicCollection        string
	WriterCollection       string
	GroupClaimCollection   string
	// PayloadFormat is MongoJSON (the default, as the seeds) or PlainText.
	PayloadFormat PayloadFormat
	// ClockSkew is the most the clocks of the broker nodes sharing the
	// database may differ. A client's fanout watermark passes only
	// messages stamped more than twice this before the fetch (and before
	// every Publish still writing, see the package doc, # Skip nothing).
	// 0 means DefaultClockSkew.
	ClockSkew time.Duration
	// WriteTimeout bounds each write of Publish (and of Retain): a
	// message is readable within it of its stamp, or its Publish failed.
	// A watermark waits for a Publish still writing at most this long. 0
	// means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// AckGrace is how long a fanout ack of a message that is not stored is
	// kept (an asynchronous pipeline may write an ack before its message;
	// QoS 0 messages are acked but never stored). 0 means DefaultAckGrace.
	AckGrace time.Duration
	// PollInterval is how often a watch polls for stored messages and
	// connected clients where the server has no change streams (see
	// Store.Watch). 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Unsafe writes messages and retained messages unacknowledged (write
	// concern w:0, the seeds' w_mode = unsafe): Publish and Retain return
	// before the server has them, and their errors are not seen; fanout
	// watermarks then wait WriteTimeout for every such write. The writes
	// that decide something (client states, queue claims, acks, cursors)
	// stay acknowledged. On FerretDB, which answers
	// unacknowledged writes (and so puts the driver's connection out of
	// step), every write stays acknowledged.
	Unsafe bool
	// LookupReadPreference is the read preference of the lookups Client,
	// Subscriptions and Retained (the seeds' r_mode: readpref.Primary() for
	// master, readpref.SecondaryPreferred() for slave_ok); nil keeps the
	// client's. Fetches, claims and the reads of Connected always read
	// the primary.
	LookupReadPreference *readpref.ReadPref
}

// names are the collection names in use.
type names struct {
	client, sub, msg, retain, acked, ackedMsg, claim, topic, writer, groupClaim string
}

// resolve returns the options with the defaults filled in and the
// collection names, or an error naming the bad option.
func (o *Options) resolve() (Options, names, error) {
	var opt Options
	if o != nil {
		opt = *o
	}
	pick := func(name, def string) string {
		if name != "" {
			return name
		}
		return opt.CollectionPrefix + def
	}
	n := names{
		client:   pick(opt.ClientCollection, DefaultClientCollection),
		sub:      pick(opt.SubscriptionCollection, DefaultSubscriptionCollection),
		msg:      pick(opt.MessageCollection, DefaultMessageCollection),
		retain:   pick(opt.RetainCollection, DefaultRetainCollection),
		acked:    pick(opt.AckCollection, DefaultAckCollection),
		ackedMsg: pick(opt.AckedMsgCollection, DefaultAckedMsgCollection),
		claim:    pick(opt.ClaimCollection, DefaultClaimCollection),
		topic:    pick(opt.TopicCollection, DefaultTopicCollection),
		writer:   pick(opt.WriterCollection, DefaultWriterCollection),

		groupClaim: pick(opt.GroupClaimCollection, DefaultGroupClaimCollection),
	}
	seen := map[string]string{}
	for _, c := range []struct{ field, name string }{
		{"ClientCollection", n.client}, {"SubscriptionCollection", n.sub}, {"MessageCollection", n.msg},
		{"RetainCollection", n.retain}, {"AckCollection", n.acked}, {"AckedMsgCollection", n.ackedMsg},
		{"ClaimCollection", n.claim}, {"TopicCollection", n.topic}, {"WriterCollection", n.writer},
		{"GroupClaimCollection", n.groupClaim},
	} {
		if err := checkCollection(c.name); err != nil {
			return opt, n, fmt.Errorf("Options.%s (or CollectionPrefix): collection name %q %v", c.field, c.name, err)
		}
		if other, dup := seen[c.name]; dup {
			return opt, n, fmt.Errorf("Options.%s and Options.%s are both %q", other, c.field, c.name)
		}
		seen[c.name] = c.field
	}
	switch opt.PayloadFormat {
	case "":
		opt.PayloadFormat = MongoJSON
	case MongoJSON, PlainText:
	default:
		return opt, n, fmt.Errorf("Options.PayloadFormat is %q (want %q or %q)", opt.PayloadFormat, MongoJSON, PlainText)
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
		def   time.Duration
	}{
		{"ClockSkew", &opt.ClockSkew, DefaultClockSkew},
		{"WriteTimeout", &opt.WriteTimeout, DefaultWriteTimeout},
		{"AckGrace", &opt.AckGrace, DefaultAckGrace},
		{"PollInterval", &opt.PollInterval, DefaultPollInterval},
	} {
		switch {
		case *d.v < 0:
			return opt, n, fmt.Errorf("Options.%s is %v, less than 0", d.field, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if opt.WriteTimeout < 100*time.Millisecond {
		return opt, n, fmt.Errorf("Options.WriteTimeout is %v, less than 100ms", opt.WriteTimeout)
	}
	return opt, n, nil
}

// checkCollection says what is wrong with a collection name, or nil:
// MongoDB refuses empty names, '$', NUL and the system. prefix.
func checkCollection(s string) error {
	switch {
	case s == "":
		return errString("is empty")
	case len(s) > 120:
		return errString("is longer than 120 bytes")
	case strings.ContainsAny(s, "$\x00"):
		return errString("holds '$' or NUL")
	case strings.HasPrefix(s, "system."):
		return errString("starts with \"system.\"")
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }
