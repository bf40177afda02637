package persisttest_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persisttest"
)

func harness(bugs ...string) persisttest.Harness {
	return persisttest.Harness{New: func(t testing.TB) persist.Store {
		s := newMemStore(bugs...)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}}
}

// TestRun runs the suite against the reference store, and against
// variants that lack what they declare.
func TestRun(t *testing.T) {
	t.Run("Full", func(t *testing.T) {
		t.Parallel()
		persisttest.Run(t, harness())
	})
	t.Run("Bare", func(t *testing.T) {
		// Only the Store interface: no lookups, no Closer, no Pinger.
		t.Parallel()
		persisttest.Run(t, persisttest.Harness{
			New:      func(t testing.TB) persist.Store { return bareStore{newMemStore()} },
			Features: persisttest.Features{NoClientLookup: true, NoSubscriptionLookup: true, NoRetainLookup: true, MaxPayload: 1000},
		})
	})
	t.Run("FanoutOnly", func(t *testing.T) {
		t.Parallel()
		persisttest.Run(t, persisttest.Harness{
			New: func(t testing.TB) persist.Store {
				return &lacking{memStore: newMemStore(), noQueue: true, noRetain: true}
			},
			Features: persisttest.Features{NoQueue: true, NoRetain: true},
		})
	})
	t.Run("QueueOnly", func(t *testing.T) {
		t.Parallel()
		persisttest.Run(t, persisttest.Harness{
			New:      func(t testing.TB) persist.Store { return &lacking{memStore: newMemStore(), noFanout: true} },
			Features: persisttest.Features{NoFanout: true},
		})
	})
}

func BenchmarkStore(b *testing.B) {
	persisttest.Bench(b, harness())
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

// lacking is a store without queue, fanout or retained messages.
type lacking struct {
	*memStore
	noQueue, noFanout, noRetain bool
}

func (l *lacking) Publish(ctx context.Context, msgs ...*persist.Message) error {
	for _, m := range msgs {
		if m.Mode == persist.Queue && l.noQueue || m.Mode == persist.Fanout && l.noFanout {
			return persist.Errorf(persist.ErrUnsupported, "lacking: mode %v", m.Mode)
		}
	}
	return l.memStore.Publish(ctx, msgs...)
}

func (l *lacking) FetchOffline(ctx context.Context, id, filter string, opt persist.Fetch) ([]*persist.Message, error) {
	if opt.Mode == persist.Queue && l.noQueue || opt.Mode == persist.Fanout && l.noFanout {
		return nil, persist.Errorf(persist.ErrUnsupported, "lacking: mode %v", opt.Mode)
	}
	return l.memStore.FetchOffline(ctx, id, filter, opt)
}

func (l *lacking) Retain(ctx context.Context, m *persist.Message) error {
	if l.noRetain {
		return persist.Errorf(persist.ErrUnsupported, "lacking: retain")
	}
	return l.memStore.Retain(ctx, m)
}

// mutants are deliberate contract violations of the reference store and
// cases of the suite that must catch them.
var mutants = []struct {
	bug  string
	run  string   // top-level cases to run, as in "A|B"
	fail []string // subtests that must fail
}{
	{"case-insensitive", "Subscriptions|Client", []string{"Subscriptions/PerClient", "Client/AwkwardIDs"}},
	{"pad space", "Subscriptions|Retained", []string{"Subscriptions/PerClient", "Subscriptions/AwkwardClientIDs", "Retained/AwkwardTopics"}},
	{"hash matches dollar", "Wildcards", []string{"Wildcards/Fanout/hash_alone", "Wildcards/Queue/hash_alone"}},
	{"like", "Wildcards|Retained", []string{"Wildcards/Fanout/hash", "Wildcards/Queue/hash_matches_the_parent", "Retained/Wildcards"}},
	{"overwrite client", "Client", []string{"Client/ConnectDisconnect", "Client/ReconnectOtherNode"}},
	{"wall clock", "Client", []string{"Client/ConnectDisconnect"}},
	{"disconnect anywhere", "Client", []string{"Client/DisconnectAfterMove"}},
	{"node must match", "Client", []string{"Client/DisconnectWithoutStoredNode"}},
	{"racy disconnect", "Client", []string{"Client/DisconnectAfterMoveConcurrently"}},
	{"remove keeps start", "Fanout|Subscriptions", []string{"Fanout/SubscriptionStart", "Subscriptions/AddUpdateRemove"}},
	{"resubscribe resets", "Fanout", []string{"Fanout/SubscriptionStart"}},
	{"no start", "Fanout", []string{"Fanout/SubscriptionStart", "Fanout/SubscriptionStartWildcard"}},
	{"collation order", "Subscriptions|Retained", []string{"Subscriptions/Order", "Retained/Order"}},
	{"partial batch", "Invalid", []string{"Invalid/PublishTopic"}},
	{"duplicates", "Publish", []string{"Publish/Idempotent"}},
	{"truncate payload", "RoundTrip", []string{"RoundTrip/Payloads/Fanout", "RoundTrip/Payloads/Queue"}},
	{"nil payload", "RoundTrip", []string{"RoundTrip/Payloads"}},
	{"drop props", "RoundTrip", []string{"RoundTrip/Fields"}},
	{"anyone acks", "Queue", []string{"Queue/Lease"}},
	{"queue ack moves cursor", "Queue", []string{"Queue/ModesApart"}},
	{"modes mixed", "Queue", []string{"Queue/ModesApart"}},
	{"cursor per client", "Fanout", []string{"Fanout/CursorPerTopic"}},
	{"cursor moves back", "Fanout|Concurrency", []string{"Fanout/Cursors", "Concurrency"}},
	{"subs first wins", "Subscriptions", []string{"Subscriptions/SameFilterTwiceInOneCall"}},
	{"ack needs message", "Fanout", []string{"Fanout/AckBeforePublish"}},
	{"packet limit", "Publish", []string{"Publish/LargeBatch/Fanout", "Publish/LargeBatch/Queue"}},
	{"ack deletes fanout", "Fanout", []string{"Fanout/Cursors"}},
	{"return expired", "Expiry", []string{"Expiry/Fanout", "Expiry/Queue", "Expiry/Retained"}},
	{"ignore since", "Limits", []string{"Limits/Since/Fanout", "Limits/Since/Queue"}},
	{"double claim", "Queue", []string{"Queue/ClaimedOnce", "Queue/ExactlyOnce"}},
	{"racy claim", "Queue", []string{"Queue/ExactlyOnce"}},
	{"claim past limit", "Queue", []string{"Queue/LimitClaims"}},
	{"endless lease", "Queue", []string{"Queue/Lease"}},
	{"own claims skipped", "Queue", []string{"Queue/OwnClaimsAgain", "Queue/OwnClaimRenewsLease"}},
	{"own claim keeps lease", "Queue", []string{"Queue/OwnClaimRenewsLease"}},
	{"retain keeps empty", "Retained", []string{"Retained/SetReplaceDelete"}},
	{"retain skips expired", "Retained", []string{"Retained/ReplaceWithExpired"}},
	{"retain keeps first", "Retained", []string{"Retained/SetReplaceDelete"}},
	{"ignore ctx", "CancelledContext", []string{"CancelledContext/Connected", "CancelledContext/Publish", "CancelledContext/FetchOffline"}},
	{"open after close", "Closed", []string{"Closed"}},
}

// TestMutant runs the suite against the reference store with the bug named
// by $PERSISTTEST_MUTANT; TestMutants starts it.
func TestMutant(t *testing.T) {
	bug := os.Getenv("PERSISTTEST_MUTANT")
	if bug == "" {
		t.Skip("run by TestMutants")
	}
	persisttest.Run(t, harness(bug))
}

// TestMutants checks that the suite catches each deliberate bug of the
// reference store, in the cases meant to catch it.
func TestMutants(t *testing.T) {
	if os.Getenv("PERSISTTEST_MUTANT") != "" {
		t.Skip("in a mutant run")
	}
	for _, m := range mutants {
		t.Run(strings.ReplaceAll(m.bug, " ", "_"), func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestMutant$/^("+m.run+")$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "PERSISTTEST_MUTANT="+m.bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store with bug %q:\n%s", m.bug, tail(out))
			}
			for _, name := range m.fail {
				re := regexp.MustCompile(`--- FAIL: TestMutant/` + regexp.QuoteMeta(name) + `[/ ]`)
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
