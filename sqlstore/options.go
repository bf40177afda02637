package sqlstore

import (
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Default table names, the seeds' own.
const (
	DefaultClientTable       = "mqtt_client"
	DefaultSubscriptionTable = "mqtt_sub"
	DefaultMessageTable      = "mqtt_msg"
	DefaultRetainTable       = "mqtt_retain"
	DefaultAckTable          = "mqtt_acked"
	// DefaultTopicTable holds each topic's message counter (see the
	// package doc's Ordering).
	DefaultTopicTable = "mqtt_topic"
	// DefaultAckedMsgTable holds the fanout acks above a client's
	// watermark, one row per acknowledged message.
	DefaultAckedMsgTable = "mqtt_acked_msg"
	// DefaultClaimTable holds the claims of shared groups' messages (see
	// Store.Claim).
	DefaultClaimTable = "mqtt_claim"
	// DefaultWatchTable holds the filters of the nodes' watches
	// (PostgreSQL only, see Store.Watch).
	DefaultWatchTable = "mqtt_watch"
)

// Limits of what the stores keep, in bytes; longer input is rejected with
// an error matching persist.ErrInvalid before anything is written.
const (
	// MaxTopicLen is the longest topic name or filter (MQTT allows 65535;
	// database index limits do not).
	MaxTopicLen = 1024
	// MaxClientIDLen is the longest client ID.
	MaxClientIDLen = 1024
	// MaxStringLen is the longest node name, username or peer host.
	MaxStringLen = 1024
	// MaxIDLen is the longest message ID (IDs from persist.NewID have 26).
	MaxIDLen = 64
)

// maxTableName leaves room for the index names made from a table name
// within PostgreSQL's 63 and MySQL's 64 characters.
const maxTableName = 40

// Options configure a Store; the zero value and nil mean the defaults.
type Options struct {
	// TablePrefix is put before every default table name: "t1_" gives
	// t1_mqtt_client, t1_mqtt_sub, ... It does not apply to the names set
	// below.
	TablePrefix string
	// ClientTable, SubscriptionTable, MessageTable, RetainTable,
	// AckTable, TopicTable, AckedMsgTable, ClaimTable and WatchTable replace a table
	// name entirely. Names are identifiers:
	// letters, digits and '_', not starting with a digit, at most 40
	// characters. They are quoted in SQL, so on PostgreSQL use lower
	// case to query the tables unquoted.
	ClientTable       string
	SubscriptionTable string
	MessageTable      string
	RetainTable       string
	AckTable          string
	TopicTable        string
	AckedMsgTable     string
	ClaimTable        string
	WatchTable        string
	// BatchRows is the most messages one INSERT of Publish carries; a
	// larger batch is split into several statements in one transaction.
	// 0 means 500.
	BatchRows int
	// BatchBytes is the most payload bytes one INSERT of Publish carries
	// (it always carries at least one message). 0 means 8 MiB, within
	// MySQL's default max_allowed_packet of 16 MiB (MariaDB) or 64 MiB.
	BatchBytes int
	// PollInterval is how often a watch polls for stored messages and
	// connected clients on SQLite and MySQL, which have no notifications
	// (see Store.Watch). 0 means 50ms.
	PollInterval time.Duration
}

const (
	defaultBatchRows  = 500
	defaultBatchBytes = 8 << 20
	// maxBatchRows keeps a statement under the 32766 bound variables of
	// SQLite and the 65535 of PostgreSQL and MySQL.
	maxBatchRows = 2000
	// defaultPollInterval is PollInterval's default.
	defaultPollInterval = 50 * time.Millisecond
)

// tables holds the table names in use, unquoted.
type tables struct {
	client, sub, msg, retain, acked string
	topic, ackedMsg, claim, watch   string
}

// resolve returns the options with defaults filled in and the table names,
// or an error matching persist.ErrInvalid.
func (o *Options) resolve() (Options, tables, error) {
	var opt Options
	if o != nil {
		opt = *o
	}
	pick := func(name, def string) string {
		if name != "" {
			return name
		}
		return opt.TablePrefix + def
	}
	t := tables{
		client: pick(opt.ClientTable, DefaultClientTable),
		sub:    pick(opt.SubscriptionTable, DefaultSubscriptionTable),
		msg:    pick(opt.MessageTable, DefaultMessageTable),
		retain: pick(opt.RetainTable, DefaultRetainTable),
		acked:  pick(opt.AckTable, DefaultAckTable),

		topic:    pick(opt.TopicTable, DefaultTopicTable),
		ackedMsg: pick(opt.AckedMsgTable, DefaultAckedMsgTable),
		claim:    pick(opt.ClaimTable, DefaultClaimTable),
		watch:    pick(opt.WatchTable, DefaultWatchTable),
	}
	seen := map[string]string{}
	for _, n := range []struct{ field, name string }{
		{"ClientTable", t.client}, {"SubscriptionTable", t.sub}, {"MessageTable", t.msg},
		{"RetainTable", t.retain}, {"AckTable", t.acked}, {"TopicTable", t.topic},
		{"AckedMsgTable", t.ackedMsg}, {"ClaimTable", t.claim}, {"WatchTable", t.watch},
	} {
		if err := checkIdent(n.name); err != nil {
			return opt, t, persist.Errorf(persist.ErrInvalid, "sqlstore: Options.%s (or TablePrefix): table name %q %v", n.field, n.name, err)
		}
		if other, dup := seen[n.name]; dup {
			return opt, t, persist.Errorf(persist.ErrInvalid, "sqlstore: Options.%s and Options.%s are both %q", other, n.field, n.name)
		}
		seen[n.name] = n.field
	}
	switch {
	case opt.BatchRows < 0:
		return opt, t, persist.Errorf(persist.ErrInvalid, "sqlstore: Options.BatchRows is %d", opt.BatchRows)
	case opt.BatchRows == 0:
		opt.BatchRows = defaultBatchRows
	case opt.BatchRows > maxBatchRows:
		return opt, t, persist.Errorf(persist.ErrInvalid, "sqlstore: Options.BatchRows is %d, more than %d", opt.BatchRows, maxBatchRows)
	}
	switch {
	case opt.BatchBytes < 0:
		return opt, t, persist.Errorf(persist.ErrInvalid, "sqlstore: Options.BatchBytes is %d", opt.BatchBytes)
	case opt.BatchBytes == 0:
		opt.BatchBytes = defaultBatchBytes
	}
	switch {
	case opt.PollInterval < 0:
		return opt, t, persist.Errorf(persist.ErrInvalid, "sqlstore: Options.PollInterval is %v", opt.PollInterval)
	case opt.PollInterval == 0:
		opt.PollInterval = defaultPollInterval
	}
	return opt, t, nil
}

// checkIdent says what is wrong with a table name, or nil.
func checkIdent(s string) error {
	if s == "" {
		return errString("is empty")
	}
	if len(s) > maxTableName {
		return errString("is longer than 40 characters")
	}
	for i, c := range []byte(s) {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return errString("is not an identifier (letters, digits and '_', not starting with a digit)")
		}
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }
