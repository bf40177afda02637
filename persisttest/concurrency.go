package persisttest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// testConcurrency has many goroutines use one store at once: publishing,
// acking, subscribing, connecting, retaining and fetching. Afterwards all
// their data is there. Run under -race it also checks the store's own
// synchronisation.
func (s *suite) testConcurrency(t *testing.T) {
	mode := s.anyMode(t)
	st := s.store(t)
	const workers, rounds, batch = 8, 15, 4
	type worker struct {
		id        string
		published []*persist.Message
		acked     map[string]bool // IDs of the messages it acked
	}
	ws := make([]*worker, workers)
	_, hasRetain := s.hasRetainLookup(st)
	connects, subscribes := s.has(persist.OnConnected), s.has(persist.OnSubscribed)
	// Acks and fetches of fanout messages, where the store reads them.
	fanReads := mode == persist.Fanout && s.has(persist.OnFetch|persist.OnAcked)
	// Every worker also writes the same rows: one client's subscription,
	// state and cursor, and one retained topic (upserts that race).
	const shared = "conc-shared"
	var sharedMsgs []*persist.Message
	if mode == persist.Fanout {
		sharedMsgs = series(mode, "conc/shared/t", 40)
		publish(t, st, sharedMsgs...)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wk := &worker{id: fmt.Sprintf("conc-%d", w), acked: map[string]bool{}}
		ws[w] = wk
		wg.Go(func() {
			ctx := t.Context()
			for r := range rounds {
				// Online on node-0, offline, online on node-1, offline, …
				if connects {
					if err := st.Connected(ctx, &persist.Client{ID: wk.id, Node: fmt.Sprintf("node-%d", r/2%2), Online: r%2 == 0, OnlineAt: time.Now(), OfflineAt: time.Now()}); err != nil {
						t.Errorf("%s: Connected: %v", wk.id, err)
						return
					}
				}
				if subscribes {
					if err := st.Subscribed(ctx, wk.id, []persist.Subscription{{Filter: fmt.Sprintf("conc/%d/%d", w, r), QoS: 1, History: true}}, nil); err != nil {
						t.Errorf("%s: Subscribed: %v", wk.id, err)
						return
					}
				}
				var b []*persist.Message
				for i := range batch {
					m := NewMessage(fmt.Sprintf("conc/%d/%d", w, i%2), fmt.Appendf(nil, "%d/%d/%d", w, r, i))
					m.Mode = mode
					b = append(b, m)
				}
				if err := st.Publish(ctx, b...); err != nil {
					t.Errorf("%s: Publish: %v", wk.id, err)
					return
				}
				wk.published = append(wk.published, b...)
				if subscribes {
					if err := st.Subscribed(ctx, shared, []persist.Subscription{{Filter: "conc/shared/#", QoS: byte(r % 3)}}, nil); err != nil {
						t.Errorf("%s: Subscribed(%s): %v", wk.id, shared, err)
						return
					}
				}
				if connects {
					if err := st.Connected(ctx, &persist.Client{ID: shared, Node: wk.id, Online: true, OnlineAt: time.Now()}); err != nil {
						t.Errorf("%s: Connected(%s): %v", wk.id, shared, err)
						return
					}
				}
				if hasRetain {
					if err := st.Retain(ctx, newRetained("concshared/r", fmt.Appendf(nil, "%d/%d", w, r))); err != nil {
						t.Errorf("%s: Retain(concshared/r): %v", wk.id, err)
						return
					}
				}
				if fanReads {
					// Acks of the shared client: worker w acks w, w+8,
					// w+16 and w+24, in changing order; #31 is the highest.
					m := sharedMsgs[w+workers*(r*3%4)]
					if err := st.Acked(ctx, shared, persist.Ack{ID: m.ID, Topic: m.Topic}); err != nil {
						t.Errorf("%s: Acked(%s): %v", wk.id, shared, err)
						return
					}
				}
				if hasRetain {
					if err := st.Retain(ctx, newRetained(fmt.Sprintf("conc/%d/r", w), fmt.Appendf(nil, "%d", r))); err != nil {
						t.Errorf("%s: Retain: %v", wk.id, err)
						return
					}
				}
				if !fanReads {
					continue
				}
				// Read a neighbour's topics while it writes.
				if _, err := st.FetchOffline(ctx, wk.id+"-reader", fmt.Sprintf("conc/%d/+", (w+1)%workers), fan); err != nil {
					t.Errorf("%s: FetchOffline: %v", wk.id, err)
					return
				}
				if r%3 == 2 {
					// Ack one message of this batch.
					m := b[r%batch]
					if err := st.Acked(ctx, wk.id, persist.Ack{ID: m.ID, Topic: m.Topic}); err != nil {
						t.Errorf("%s: Acked: %v", wk.id, err)
						return
					}
					wk.acked[m.ID] = true
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all := slices.Clone(sharedMsgs)
	for _, wk := range ws {
		all = append(all, wk.published...)
	}
	slices.SortFunc(all, func(a, b *persist.Message) int { return strings.Compare(a.ID, b.ID) })
	sameIDs(t, "every message published concurrently", s.read(t, st, "conc-final", "conc/#", mode), all)
	if fanReads {
		for w, wk := range ws {
			for i := range 2 {
				topic := fmt.Sprintf("conc/%d/%d", w, i)
				var want []*persist.Message
				for _, m := range wk.published {
					if m.Topic == topic && !wk.acked[m.ID] {
						want = append(want, m)
					}
				}
				sameIDs(t, wk.id+" after its concurrent acks on "+topic, fetch(t, st, wk.id, topic, fan), want)
			}
		}
	}
	if fanReads {
		sameIDs(t, shared+" after concurrent acks of #0 to #31", fetch(t, st, shared, "conc/shared/t", fan), sharedMsgs[4*workers:])
	}
	if sl, ok := s.hasSubLookup(st); ok {
		subs, err := sl.Subscriptions(t.Context(), shared)
		if err != nil || len(subs) != 1 || subs[0].Filter != "conc/shared/#" {
			t.Errorf("Subscriptions(%s) after concurrent subscribes to one filter = %+v, %v; want that one", shared, subs, err)
		}
		for w, wk := range ws {
			var want []persist.Subscription
			for r := range rounds {
				want = append(want, persist.Subscription{Filter: fmt.Sprintf("conc/%d/%d", w, r), QoS: 1})
			}
			checkSubs(t, "subscriptions made concurrently", sl, wk.id, sortedSubs(want))
		}
	}
	if cl, ok := s.hasClientLookup(st); ok {
		if c, err := cl.Client(t.Context(), shared); err != nil || !c.Online || !strings.HasPrefix(c.Node, "conc-") {
			t.Errorf("Client(%s) after concurrent connects = %+v, %v; want online on one of the workers' nodes", shared, c, err)
		}
		for _, wk := range ws {
			c, err := cl.Client(t.Context(), wk.id)
			if err != nil {
				t.Errorf("Client(%q): %v", wk.id, err)
				continue
			}
			if want := fmt.Sprintf("node-%d", (rounds-1)/2%2); c.Node != want || c.Online != ((rounds-1)%2 == 0) {
				t.Errorf("Client(%q) = node %q online %v, want the last state: node %q online %v", wk.id, c.Node, c.Online, want, (rounds-1)%2 == 0)
			}
		}
	}
	if rl, ok := s.hasRetainLookup(st); ok {
		if got := retained(t, rl, "concshared/r"); len(got) != 1 {
			t.Errorf("Retained(concshared/r) after concurrent retains returned %s, want one message", fmtMsgs(got))
		}
		got := retained(t, rl, "conc/+/r")
		if len(got) != workers {
			t.Errorf("Retained(conc/+/r) returned %d messages, want %d", len(got), workers)
		}
		for _, m := range got {
			if want := fmt.Sprint(rounds - 1); string(m.Payload) != want {
				t.Errorf("retained %q is %q, want the last one %q", m.Topic, m.Payload, want)
			}
		}
	}
}
