package persisttest_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/mqttpersist/mqttpersist/internal/memfault"
	"github.com/mqttpersist/mqttpersist/memstore"
	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

// newMem returns a memstore with bugs switched on, closed when t ends.
func newMem(t testing.TB, opts *memstore.Options, bugs []string) *memstore.Store {
	s := memstore.NewWithOptions(opts)
	if len(bugs) > 0 {
		memfault.Set(s, bugs...)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// limited are the limits of the "Limited" variant: smaller than MQTT's,
// large enough for the suite's awkward topics and client IDs.
var limited = persist.Limits{ClientID: 1000, Topic: 1024, Text: 1000, ID: 64, Payload: 1000}

// variants are the stores the suite runs against: the reference store,
// and stores built on it that lack what they do not declare or implement.
var variants = map[string]func(bugs ...string) persisttest.Harness{
	"Full": func(bugs ...string) persisttest.Harness {
		return persisttest.Harness{New: func(t testing.TB) persist.Store { return newMem(t, nil, bugs) }}
	},
	// Only the Store interface: no lookups, no Closer, no Pinger, no
	// Limiter; smaller payloads.
	"Bare": func(bugs ...string) persisttest.Harness {
		return persisttest.Harness{
			New:      func(t testing.TB) persist.Store { return bareStore{newMem(t, nil, bugs)} },
			Features: persisttest.Features{MaxPayload: 1000},
		}
	},
	// Declared limits below MQTT's.
	"Limited": func(bugs ...string) persisttest.Harness {
		return persisttest.Harness{New: func(t testing.TB) persist.Store {
			return newMem(t, &memstore.Options{Limits: limited}, bugs)
		}}
	},
	"FanoutOnly": func(bugs ...string) persisttest.Harness {
		return persisttest.Harness{
			New: func(t testing.TB) persist.Store {
				return &lacking{Store: newMem(t, nil, bugs), noQueue: true, noRetain: true}
			},
			Features: persisttest.Features{NoQueue: true},
		}
	},
	"QueueOnly": func(bugs ...string) persisttest.Harness {
		return persisttest.Harness{
			New:      func(t testing.TB) persist.Store { return &lacking{Store: newMem(t, nil, bugs), noFanout: true} },
			Features: persisttest.Features{NoFanout: true},
		}
	},
	// A publish-only store, as a time-series writer is, read back
	// through the memstore behind it.
	"Writer": func(bugs ...string) persisttest.Harness {
		return persisttest.Harness{
			New: func(t testing.TB) persist.Store { return &writer{mem: newMem(t, nil, bugs)} },
			ReadBack: func(t testing.TB, st persist.Store) []*persist.Message {
				return st.(*writer).mem.Messages()
			},
		}
	},
}

// TestRun runs the suite against every variant.
func TestRun(t *testing.T) {
	for name, h := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			persisttest.Run(t, h())
		})
	}
}

func BenchmarkStore(b *testing.B) {
	persisttest.Bench(b, variants["Full"]())
}

// bareStore hides every method but the Store's.
type bareStore struct{ s persist.Store }

func (b bareStore) Connected(ctx context.Context, c *persist.Client) error {
	return b.s.Connected(ctx, c)
}
func (b bareStore) Subscribed(ctx context.Context, id string, subs []persist.Subscription, removed []string) error {
	return b.s.Subscribed(ctx, id, subs, removed)
}
func (b bareStore) Publish(ctx context.Context, msgs ...*persist.Message) error {
	return b.s.Publish(ctx, msgs...)
}
func (b bareStore) Acked(ctx context.Context, id string, acks ...persist.Ack) error {
	return b.s.Acked(ctx, id, acks...)
}
func (b bareStore) Retain(ctx context.Context, m *persist.Message) error { return b.s.Retain(ctx, m) }
func (b bareStore) FetchOffline(ctx context.Context, id, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	return b.s.FetchOffline(ctx, id, filter, opt)
}

// lacking is a store without queue, fanout or retained messages. Without
// retained messages it declares its events without OnRetain.
type lacking struct {
	*memstore.Store
	noQueue, noFanout, noRetain bool
}

func (l *lacking) Events() persist.Event {
	if l.noRetain {
		return persist.AllEvents &^ persist.OnRetain
	}
	return persist.AllEvents
}

func (l *lacking) Publish(ctx context.Context, msgs ...*persist.Message) error {
	for _, m := range msgs {
		if m != nil && (m.Mode == persist.Queue && l.noQueue || m.Mode == persist.Fanout && l.noFanout) {
			return persist.Errorf(persist.ErrUnsupported, "lacking: mode %v", m.Mode)
		}
	}
	return l.Store.Publish(ctx, msgs...)
}

func (l *lacking) FetchOffline(ctx context.Context, id, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	if opt.Mode == persist.Queue && l.noQueue || opt.Mode == persist.Fanout && l.noFanout {
		return nil, persist.Errorf(persist.ErrUnsupported, "lacking: mode %v", opt.Mode)
	}
	return l.Store.FetchOffline(ctx, id, filter, opt)
}

func (l *lacking) Retain(ctx context.Context, m *persist.Message) error {
	if l.noRetain && !memfault.Has(l.Store, "retain pretends") {
		return persist.Errorf(persist.ErrUnsupported, "lacking: retain")
	}
	return l.Store.Retain(ctx, m)
}

// writer is a publish-only store over a memstore: every verb but Publish
// returns ErrUnsupported, and it declares OnPublish alone.
type writer struct {
	persist.Unsupported
	mem *memstore.Store
}

func (w *writer) Events() persist.Event { return persist.OnPublish }

func (w *writer) Publish(ctx context.Context, msgs ...*persist.Message) error {
	return w.mem.Publish(ctx, msgs...)
}

func (w *writer) Connected(ctx context.Context, c *persist.Client) error {
	if memfault.Has(w.mem, "writer connects") {
		return w.mem.Connected(ctx, c)
	}
	return w.Unsupported.Connected(ctx, c)
}

func (w *writer) Limits() persist.Limits { return w.mem.Limits() }

func (w *writer) Close() error { return w.mem.Close() }

// Names of the suite's subtests, for the mutants' lists.
var (
	badIDs     = []string{"empty", "NUL", "invalid UTF-8", "too long"}
	badTexts   = []string{"NUL", "invalid UTF-8", "too long"}
	badNames   = []string{"empty", "plus", "plus inside a level", "hash", "hash alone", "NUL", "invalid UTF-8", "UTF-16 surrogate", "overlong encoding"}
	badFilters = []string{"empty", "hash not last", "hash inside a level", "hash first of two", "plus inside a level",
		"plus after text", "NUL", "invalid UTF-8", "share without filter", "share with empty group"}
	badSubs     = []string{"QoS 3", "RetainHandling 3", "Identifier -1", "Identifier 268435456", "filter too long"}
	badFetches  = []string{"filter too long", "Mode 7", "Limit -1", "Since -1s", "Lease -1s"}
	badMessages = []string{"nil message", "empty ID", "ID too long", "QoS 3", "unknown Mode", "topic too long", "PayloadFormat 2",
		"ContentType invalid UTF-8", "ResponseTopic invalid UTF-8", "user property key invalid UTF-8", "user property value invalid UTF-8"}
	badRetains = []string{"nil message", "QoS 3", "unknown Mode", "topic too long", "From NUL", "Username invalid UTF-8", "PayloadFormat 2", "ContentType invalid UTF-8"}
)

// in returns the subtests names of parent, each with prefix.
func in(parent, prefix string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = parent + "/" + prefix + n
	}
	return out
}

// cat joins lists of names.
func cat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var (
	connectedTexts = cat(in("Invalid/Connected", "Username ", badTexts...), in("Invalid/Connected", "PeerHost ", badTexts...), in("Invalid/Connected", "Node ", badTexts...))
	publishAll     = func(mode string) []string {
		return cat(in("Invalid/Publish/"+mode, "", badMessages...), in("Invalid/Publish/"+mode, "From ", badTexts...),
			in("Invalid/Publish/"+mode, "Username ", badTexts...), in("Invalid/Publish/"+mode, "PeerHost ", badTexts...), in("Invalid/Publish/"+mode, "Node ", badTexts...))
	}
	tooLong = cat(
		in("Invalid/Connected", "", "ID too long", "Username too long", "PeerHost too long", "Node too long"),
		in("Invalid/Subscribed", "", "client ID too long", "filter too long", "removed too long"),
		in("Invalid/Publish/Fanout", "", "ID too long", "topic too long", "From too long", "Username too long", "PeerHost too long", "Node too long", "payload too large"),
		in("Invalid/Acked", "", "client ID too long", "ack ID too long", "ack topic too long"),
		in("Invalid/Retain", "", "topic too long", "payload too large"),
		in("Invalid/FetchOffline", "", "client ID too long", "filter too long"),
		in("Invalid/Lookups", "", "Client/too long", "Subscriptions/too long", "Retained/too long"),
	)
)

// mutants are deliberate contract violations of the reference store (or
// of a variant built on it) and cases of the suite that must catch them.
var mutants = []struct {
	bug     string
	variant string   // of variants; "" is "Full"
	run     string   // top-level cases to run, as in "A|B"
	fail    []string // subtests that must fail
}{
	{"case-insensitive", "", "Subscriptions|Client", []string{"Subscriptions/PerClient", "Client/AwkwardIDs"}},
	{"pad space", "", "Subscriptions|Retained", []string{"Subscriptions/PerClient", "Subscriptions/AwkwardClientIDs", "Retained/AwkwardTopics"}},
	{"hash matches dollar", "", "Wildcards", []string{"Wildcards/Fanout/hash_alone", "Wildcards/Queue/hash_alone"}},
	{"like", "", "Wildcards|Retained", []string{"Wildcards/Fanout/hash", "Wildcards/Queue/hash_matches_the_parent", "Retained/Wildcards"}},
	{"overwrite client", "", "Client", []string{"Client/ConnectDisconnect", "Client/ReconnectOtherNode"}},
	{"wall clock", "", "Client", []string{"Client/ConnectDisconnect"}},
	{"disconnect anywhere", "", "Client", []string{"Client/DisconnectAfterMove"}},
	{"node must match", "", "Client", []string{"Client/DisconnectWithoutStoredNode"}},
	{"racy disconnect", "", "Client", []string{"Client/DisconnectAfterMoveConcurrently"}},
	{"remove keeps start", "", "Fanout|Subscriptions", []string{"Fanout/SubscriptionStart", "Subscriptions/AddUpdateRemove"}},
	{"resubscribe resets", "", "Fanout", []string{"Fanout/SubscriptionStart"}},
	{"no start", "", "Fanout", []string{"Fanout/SubscriptionStart", "Fanout/SubscriptionStartWildcard"}},
	{"collation order", "", "Subscriptions|Retained", []string{"Subscriptions/Order", "Retained/Order"}},
	{"partial batch", "", "Invalid", cat([]string{"Invalid/PublishTopic"}, publishAll("Fanout"), publishAll("Queue"))},
	{"duplicates", "", "Publish", []string{"Publish/Idempotent"}},
	{"truncate payload", "", "RoundTrip", []string{"RoundTrip/Payloads/Fanout", "RoundTrip/Payloads/Queue"}},
	{"nil payload", "", "RoundTrip", []string{"RoundTrip/Payloads"}},
	{"drop props", "", "RoundTrip", []string{"RoundTrip/Fields"}},
	{"anyone acks", "", "Queue", []string{"Queue/Lease"}},
	{"queue ack moves cursor", "", "Queue", []string{"Queue/ModesApart"}},
	{"modes mixed", "", "Queue", []string{"Queue/ModesApart"}},
	{"acks shared", "", "Fanout", []string{"Fanout/Cursors"}},
	{"ack skips earlier", "", "Fanout|SkipNothing", []string{"Fanout/Cursors", "Fanout/CursorPerTopic", "Fanout/AckBeforePublish",
		"SkipNothing/EarlierIDStoredLater", "SkipNothing/AcksInAnyOrder", "SkipNothing/AcrossTopics", "SkipNothing/SharedDatabase", "SkipNothing/Racing"}},
	{"acks forgotten", "", "Fanout|SkipNothing", []string{"Fanout/Cursors", "SkipNothing/AcksInAnyOrder"}},
	{"subs first wins", "", "Subscriptions", []string{"Subscriptions/SameFilterTwiceInOneCall"}},
	{"ack needs message", "", "Fanout", []string{"Fanout/AckBeforePublish"}},
	{"packet limit", "", "Publish", []string{"Publish/LargeBatch/Fanout", "Publish/LargeBatch/Queue"}},
	{"ack deletes fanout", "", "Fanout", []string{"Fanout/Cursors"}},
	{"return expired", "", "Expiry", []string{"Expiry/Fanout", "Expiry/Queue", "Expiry/Retained"}},
	{"ignore since", "", "Limits", []string{"Limits/Since/Fanout", "Limits/Since/Queue"}},
	{"double claim", "", "Queue", []string{"Queue/ClaimedOnce", "Queue/ExactlyOnce"}},
	{"racy claim", "", "Queue", []string{"Queue/ExactlyOnce"}},
	{"claim past limit", "", "Queue", []string{"Queue/LimitClaims"}},
	{"endless lease", "", "Queue", []string{"Queue/Lease"}},
	{"own claims skipped", "", "Queue", []string{"Queue/OwnClaimsAgain", "Queue/OwnClaimRenewsLease"}},
	{"own claim keeps lease", "", "Queue", []string{"Queue/OwnClaimRenewsLease"}},
	{"claims ignored", "", "Claim", []string{"Claim/OneOwner", "Claim/Lease", "Claim/Racing", "Claim/GroupAcrossNodes"}},
	{"claim release anyone", "", "Claim", []string{"Claim/Release"}},
	{"retain keeps empty", "", "Retained", []string{"Retained/SetReplaceDelete"}},
	{"retain skips expired", "", "Retained", []string{"Retained/ReplaceWithExpired"}},
	{"retain keeps first", "", "Retained", []string{"Retained/SetReplaceDelete"}},
	{"ignore ctx", "", "CancelledContext", []string{"CancelledContext/Connected", "CancelledContext/Publish", "CancelledContext/FetchOffline"}},
	{"open after close", "", "Closed", []string{"Closed"}},

	// Invalid input taken (quietly, or in part) instead of refused.
	{"lax Connected", "", "Invalid", cat(in("Invalid/Connected", "", "nil client"), in("Invalid/Connected", "ID ", badIDs...), connectedTexts)},
	{"partial connect", "", "Invalid", connectedTexts},
	{"lax Subscribed", "", "Invalid", cat([]string{"Invalid/SubscribedFilter"}, in("Invalid/Subscribed", "client ID ", badIDs...),
		in("Invalid/Subscribed", "", badSubs...), in("Invalid/Subscribed", "removed ", append(badFilters, "too long")...))},
	{"lax removed", "", "Invalid", in("Invalid/Subscribed", "removed ", append(badFilters, "too long")...)},
	{"partial subscribe", "", "Invalid", cat([]string{"Invalid/SubscribedFilter"}, in("Invalid/Subscribed", "", badSubs...),
		in("Invalid/Subscribed", "removed ", append(badFilters, "too long")...))},
	{"lax Publish", "", "Invalid", cat([]string{"Invalid/PublishTopic"}, publishAll("Fanout"), publishAll("Queue"))},
	{"lax Acked", "", "Invalid", cat(in("Invalid/Acked", "client ID ", badIDs...), in("Invalid/Acked", "", "ack ID empty", "ack ID too long"),
		in("Invalid/Acked", "ack topic ", append(badNames, "too long")...))},
	{"lax ack topic", "", "Invalid", in("Invalid/Acked", "ack topic ", append(badNames, "too long")...)},
	{"partial ack", "", "Invalid", cat(in("Invalid/Acked", "", "ack ID empty", "ack ID too long"), in("Invalid/Acked", "ack topic ", append(badNames, "too long")...))},
	{"lax Retain", "", "Invalid", cat([]string{"Invalid/RetainTopic"}, in("Invalid/Retain", "", badRetains...))},
	{"retain before check", "", "Invalid", in("Invalid/Retain", "", "QoS 3", "unknown Mode", "From NUL", "Username invalid UTF-8", "PayloadFormat 2", "ContentType invalid UTF-8")},
	{"lax FetchOffline", "", "Invalid", cat([]string{"Invalid/FetchFilter/Fanout", "Invalid/FetchFilter/Queue"},
		in("Invalid/FetchOffline", "client ID ", badIDs...), in("Invalid/FetchOffline", "", badFetches...))},
	{"lax fetch options", "", "Invalid", in("Invalid/FetchOffline", "", "Limit -1", "Since -1s", "Lease -1s")},
	{"claim invalid fetch", "", "Invalid", in("Invalid/FetchOffline", "", "Limit -1", "Since -1s", "Lease -1s")},
	{"lax Client", "", "Invalid", in("Invalid/Lookups/Client", "", badIDs...)},
	{"lax Subscriptions", "", "Invalid", in("Invalid/Lookups/Subscriptions", "", badIDs...)},
	{"lax Retained", "", "Invalid", cat([]string{"Invalid/RetainTopic"}, in("Invalid/Lookups/Retained", "", append(badFilters, "too long")...))},
	{"name twice", "", "Invalid", cat([]string{"Invalid/FetchFilter/Fanout", "Invalid/FetchFilter/Queue"},
		in("Invalid/FetchOffline", "client ID ", badIDs...), in("Invalid/FetchOffline", "", badFetches...))},
	{"declare less", "", "Invalid", tooLong},
	{"lax Publish", "Limited", "Invalid", in("Invalid/Publish/Fanout", "", "payload too large", "topic too long", "ID too long")},

	// Capabilities: what a store lacks, it must not pretend to do.
	{"retain pretends", "FanoutOnly", "Unsupported", []string{"Unsupported"}},
	{"writer connects", "Writer", "Unsupported", []string{"Unsupported"}},

	// A write-only store, read back through Harness.ReadBack.
	{"partial batch", "Writer", "Invalid", cat([]string{"Invalid/PublishTopic"}, publishAll("Fanout"))},
	{"lax Publish", "Writer", "Invalid", publishAll("Queue")},
	{"truncate payload", "Writer", "RoundTrip", []string{"RoundTrip/Payloads/Fanout"}},
	{"drop props", "Writer", "RoundTrip", []string{"RoundTrip/Fields/Queue"}},
	{"duplicates", "Writer", "Publish|Concurrency", []string{"Publish/Idempotent", "Concurrency"}},
	{"ignore ctx", "Writer", "CancelledContext", []string{"CancelledContext/Publish"}},
	{"open after close", "Writer", "Closed", []string{"Closed"}},
}

// TestMutant runs the suite against the variant $PERSISTTEST_VARIANT of
// the reference store with the bug $PERSISTTEST_MUTANT; TestMutants starts
// it.
func TestMutant(t *testing.T) {
	bug := os.Getenv("PERSISTTEST_MUTANT")
	if bug == "" {
		t.Skip("run by TestMutants")
	}
	v := os.Getenv("PERSISTTEST_VARIANT")
	h, ok := variants[v]
	if !ok {
		t.Fatalf("no variant %q", v)
	}
	persisttest.Run(t, h(bug))
}

// TestMutants checks that the suite catches each deliberate bug of the
// reference store, in the cases meant to catch it.
func TestMutants(t *testing.T) {
	if os.Getenv("PERSISTTEST_MUTANT") != "" {
		t.Skip("in a mutant run")
	}
	for _, m := range mutants {
		variant := m.variant
		if variant == "" {
			variant = "Full"
		}
		t.Run(strings.ReplaceAll(m.bug, " ", "_")+"/"+variant, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestMutant$/^("+m.run+")$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "PERSISTTEST_MUTANT="+m.bug, "PERSISTTEST_VARIANT="+variant)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store with bug %q:\n%s", m.bug, tail(out))
			}
			for _, name := range m.fail {
				re := regexp.MustCompile(`--- FAIL: TestMutant/` + regexp.QuoteMeta(strings.ReplaceAll(name, " ", "_")) + `[/ ]`)
				if !re.Match(out) {
					t.Errorf("bug %q: %s did not fail:\n%s", m.bug, name, tail(out))
				}
			}
			if strings.Contains(string(out), "panic:") {
				t.Errorf("bug %q: the suite panicked:\n%s", m.bug, tail(out))
			}
		})
	}
}

func tail(out []byte) string {
	const max = 6000
	if len(out) > max {
		return "…" + string(out[len(out)-max:])
	}
	return string(out)
}
