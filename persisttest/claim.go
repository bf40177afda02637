package persisttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// testClaim pins persist.Claimer (a shared group's messages leased to one
// member at a time) and a group across two nodes through a persist.Router
// over the store: one member cluster-wide, each message once, and what the
// group missed while it had no member.
func (s *suite) testClaim(t *testing.T) {
	if _, ok := s.store(t).(persist.Claimer); !ok {
		t.Skipf("store %s does not implement persist.Claimer", s.caps.typ)
	}
	nodes := func(t *testing.T) (a, b persist.Claimer) {
		t.Helper()
		st := s.store(t)
		return st.(persist.Claimer), s.other(t, st).(persist.Claimer)
	}
	claim := func(t *testing.T, c persist.Claimer, group, owner string, lease time.Duration, ids ...string) []string {
		t.Helper()
		got, err := c.Claim(t.Context(), group, owner, lease, ids...)
		if err != nil {
			t.Fatalf("Claim(%q, %q, %v, %d IDs): %v", group, owner, lease, len(ids), err)
		}
		return got
	}
	same := func(t *testing.T, what string, got, want []string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = persist.NewID()
		}
		return out
	}
	t.Run("OneOwner", func(t *testing.T) {
		t.Parallel()
		a, b := nodes(t)
		g := "$share/" + s.uniq("g") + "/t/#"
		x := ids(3)
		same(t, "m1 claims", claim(t, a, g, "m1", time.Minute, x[:2]...), x[:2])
		same(t, "m2 on the other node, the same IDs and one more", claim(t, b, g, "m2", time.Minute, x...), x[2:])
		same(t, "m1 again (its own, renewed)", claim(t, b, g, "m1", time.Minute, x...), x[:2])
		// Owners and groups compare byte for byte.
		same(t, "M1", claim(t, a, g, "M1", time.Minute, x...), nil)
		same(t, "m1 with a trailing space", claim(t, a, g, "m1 ", time.Minute, x...), nil)
		same(t, "another group", claim(t, a, strings.Replace(g, "/t/#", "/u/#", 1), "m2", time.Minute, x...), x)
		same(t, "the group in upper case", claim(t, a, strings.Replace(g, "/g-", "/G-", 1), "m2", time.Minute, x...), x)
		same(t, "no IDs", claim(t, a, g, "m1", time.Minute), nil)
	})
	t.Run("Lease", func(t *testing.T) {
		t.Parallel()
		a, b := nodes(t)
		g := "$share/" + s.uniq("g") + "/t"
		x := ids(2)
		const lease = 1500 * time.Millisecond
		start := time.Now()
		same(t, "m1 claims", claim(t, a, g, "m1", lease, x...), x)
		got := claim(t, b, g, "m2", time.Minute, x...)
		if time.Since(start) < lease {
			same(t, "m2 within m1's lease", got, nil)
		}
		time.Sleep(time.Until(start.Add(lease + 500*time.Millisecond)))
		same(t, "m2 after m1's lease ran out", claim(t, b, g, "m2", time.Minute, x...), x)
		same(t, "m1 after m2 claimed them", claim(t, a, g, "m1", time.Minute, x...), nil)
	})
	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		a, b := nodes(t)
		g := "$share/" + s.uniq("g") + "/t"
		x := ids(3)
		same(t, "m1 claims", claim(t, a, g, "m1", time.Minute, x...), x)
		same(t, "m2 releasing m1's claims", claim(t, b, g, "m2", 0, x...), nil)
		same(t, "m3 after m2's release", claim(t, b, g, "m3", time.Minute, x...), nil)
		same(t, "m1 releasing two", claim(t, b, g, "m1", -time.Second, x[:2]...), nil)
		same(t, "m3 after m1's release", claim(t, b, g, "m3", time.Minute, x...), x[:2])
		same(t, "m1, its third still its own", claim(t, a, g, "m1", time.Minute, x...), x[2:])
	})
	t.Run("Racing", func(t *testing.T) {
		// Members on two nodes claim the same IDs at once: each ID goes
		// to one of them.
		t.Parallel()
		a, b := nodes(t)
		g := "$share/" + s.uniq("g") + "/t"
		x := ids(60)
		var mu sync.Mutex
		owner := map[string][]string{}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := a
				if i%2 == 1 {
					st = b
				}
				me := fmt.Sprintf("m%d", i)
				for round := range 3 {
					part := x[(round*20+i*7)%40:]
					got, err := st.Claim(context.Background(), g, me, time.Minute, part...)
					if err != nil {
						t.Errorf("%s: Claim: %v", me, err)
						return
					}
					mu.Lock()
					for _, id := range got {
						owner[id] = append(owner[id], me)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, id := range x {
			o := owner[id]
			for _, m := range o[1:] {
				if m != o[0] {
					t.Errorf("%s claimed by %q", id, o)
					break
				}
			}
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		a, _ := nodes(t)
		g := "$share/" + s.uniq("g") + "/t"
		for _, c := range []struct {
			what, group, owner string
			ids                []string
		}{
			{"group not shared", "t/#", "m1", ids(1)},
			{"group empty", "", "m1", ids(1)},
			{"owner empty", g, "", ids(1)},
			{"owner NUL", g, "m\x00", ids(1)},
			{"ID empty", g, "m1", []string{persist.NewID(), ""}},
		} {
			if _, err := a.Claim(t.Context(), c.group, c.owner, time.Minute, c.ids...); !errors.Is(err, persist.ErrInvalid) {
				t.Errorf("%s: Claim: %v, want an error matching ErrInvalid", c.what, err)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		x := ids(1)
		if _, err := a.Claim(ctx, g, "m1", time.Minute, x...); !errors.Is(err, context.Canceled) {
			t.Errorf("Claim with a cancelled context: %v, want context.Canceled", err)
		}
		same(t, "m2 after the cancelled claim", claim(t, a, g, "m2", time.Minute, x...), x)
	})
	t.Run("GroupAcrossNodes", func(t *testing.T) {
		// Two nodes, each a Router over its store on one database; two
		// members of a group on each. Every message published on either
		// node goes to one member, once; acked for the group, it comes to
		// no member again; a member gets again what it holds unacked.
		t.Parallel()
		s.need(t, persist.OnPublish|persist.OnFetch|persist.OnAcked|persist.OnSubscribed)
		s.needFanout(t)
		st := s.store(t)
		ra, rb := router(t, st), router(t, s.other(t, st))
		group := "$share/" + s.uniq("g") + "/grp/+"
		m := []string{"a1", "a2", "b1", "b2"}
		node := map[string]persist.Store{"a1": ra, "a2": ra, "b1": rb, "b2": rb}
		for _, id := range m {
			subscribe(t, node[id], id, []persist.Subscription{{Filter: group, QoS: 1}}, nil)
		}
		gap()
		var pub []*persist.Message
		for i := range 40 {
			x := NewMessage(fmt.Sprintf("grp/%d", i%3), fmt.Appendf(nil, "#%d", i))
			on := ra
			if i%2 == 1 {
				on = rb
			}
			publish(t, on, x)
			pub = append(pub, x)
		}
		publish(t, ra, NewMessage("other/t", []byte("not the group's")))
		got := map[string]string{}
		opt := persist.Fetch{Mode: persist.Fanout, Limit: 7}
		for round := 0; round < 20 && len(got) < len(pub); round++ {
			for _, id := range m {
				for _, x := range fetch(t, node[id], id, group, opt) {
					if who, ok := got[x.ID]; ok && who != id {
						t.Fatalf("message %s went to %s and %s", fmtMsg(x), who, id)
					}
					if _, ok := got[x.ID]; !ok {
						got[x.ID] = id
						ack(t, node[id], group, x)
					}
				}
			}
		}
		per := map[string]int{}
		for _, x := range pub {
			who, ok := got[x.ID]
			if !ok {
				t.Errorf("message %s reached no member", fmtMsg(x))
			}
			per[who]++
		}
		if len(got) != len(pub) {
			t.Errorf("the members got %d messages, want the %d published", len(got), len(pub))
		}
		t.Logf("per member: %v", per)
		for _, id := range m {
			sameIDs(t, id+" after every ack", fetch(t, node[id], id, group, opt), nil)
		}
		// A message one member holds unacked: it again, nobody else.
		held := NewMessage("grp/x", []byte("held"))
		publish(t, rb, held)
		sameIDs(t, "a1 claims the new one", fetch(t, ra, "a1", group, opt), msgs(held))
		sameIDs(t, "b1 while a1 holds it", fetch(t, rb, "b1", group, opt), nil)
		sameIDs(t, "a1 again", fetch(t, rb, "a1", group, opt), msgs(held))
		// Published while no member fetched: the next member gets it; a
		// member's own subscription start does not hide the group's.
		late := s.uniq("late")
		subscribe(t, rb, late, []persist.Subscription{{Filter: group, QoS: 1}}, nil)
		ack(t, ra, group, held)
		sameIDs(t, "a new member after the group acked everything", fetch(t, rb, late, group, opt), nil)
		// A group subscribed again keeps its start; another group of the
		// same filter has its own.
		other := strings.Replace(group, "/g-", "/h-", 1)
		subscribe(t, ra, "a1", []persist.Subscription{{Filter: other, QoS: 1}}, nil)
		gap()
		x := NewMessage("grp/y", []byte("both groups"))
		publish(t, ra, x)
		sameIDs(t, "a member of the first group", fetch(t, rb, "b2", group, opt), msgs(x))
		sameIDs(t, "a member of the second group", fetch(t, ra, "a1", other, opt), msgs(x))
	})
}

// router returns a Router with one fanout rule over st.
func router(t testing.TB, st persist.Store) *persist.Router {
	t.Helper()
	r, err := persist.NewRouter(persist.Rule{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if !r.SharedGroups() {
		t.Fatalf("a Router over %T: SharedGroups is false", st)
	}
	return r
}
