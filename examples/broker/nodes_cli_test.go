package main

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// TestMosquittoNodes runs the two scenarios of issue 9 with the Mosquitto
// command-line clients (MQTT 3.1.1, as a user would), on PostgreSQL and on
// Redis:
//
//   - two nodes: a persistent subscriber (mosquitto_sub -c -q 1) live on
//     node a; 200 QoS 1 messages to its topic published on node a and 200
//     on node b (mosquitto_pub -l, interleaved); it receives node b's
//     live, then reconnects on node b and gets nothing more: all 400
//     once. Then it moves while messages flow: it leaves node a after 100
//     of another 200 + 200 and reconnects on node b once they are all
//     published: all 400 once.
//   - one node, four publishers racing on one topic (4 × 3,000 QoS 1),
//     the subscriber cut off after one second (it disconnects) and
//     reconnecting after the publishers finished: none lost, none twice.
//
// mosquitto_sub runs with -d, so its output says which messages it
// PUBACKed and when it sent DISCONNECT: a message received again after a
// PUBACK it sent before DISCONNECT counts as twice; one that arrived
// after DISCONNECT (never PUBACKed) may rightly come again and is counted
// apart.
func TestMosquittoNodes(t *testing.T) {
	for _, tool := range []string{"mosquitto_sub", "mosquitto_pub", "stdbuf"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testenv.Required() {
				t.Fatalf("%s not found: run make services (it installs mosquitto-clients; stdbuf is coreutils)", tool)
			}
			t.Skipf("%s not found: run make services (it installs mosquitto-clients)", tool)
		}
	}
	backends := []testenv.Backend[string]{
		{Name: "postgres", Open: testenv.PostgresURL},
		{Name: "redis", Open: redisURL},
	}
	testenv.EachBackend(t, backends, func(t *testing.T, storeURL string) {
		t.Run("two nodes", func(t *testing.T) { mosquittoTwoNodes(t, storeURL) })
		t.Run("racing publishers", func(t *testing.T) { mosquittoRacing(t, storeURL) })
	})
}

func mosquittoTwoNodes(t *testing.T, storeURL string) {
	a := startBroker(t, "-store", storeURL, "-node", "a")
	b := startBroker(t, "-store", storeURL, "-node", "b")
	const topic = "nodes/cli"
	id := testenv.FreshName("cli-roamer-")
	var sessions []*mosqSub

	// Live on a while 200 + 200 are published on a and b.
	live := startMosqSub(t, a, id, topic)
	sessions = append(sessions, live)
	round1 := interleaved("r1-", 200)
	mosqPublish(t, topic, 0, []mosqPub{{a.addr, round1.a}, {b.addr, round1.b}})
	live.waitFor(round1.all, 15*time.Second)
	got := live.payloads()
	fromB := 0
	for _, p := range got {
		if strings.HasPrefix(p, "r1-b") {
			fromB++
		}
	}
	live.stop()
	// Back on b: nothing more.
	again := startMosqSub(t, b, id, topic)
	sessions = append(sessions, again)
	time.Sleep(3 * time.Second)
	again.stop()
	r1 := mosqCount(sessions, round1.all)
	t.Logf("live on a: %d of a's 200 and %d of b's 200 (published on b, delivered live on a); reconnected on b: %d more; %v",
		len(got)-fromB, fromB, len(again.payloads()), r1)
	if fromB != 200 {
		t.Errorf("the subscriber live on node a received %d of the 200 messages published on node b, want all 200 live", fromB)
	}
	r1.check(t, "live on a, then on b")

	// Moving while messages flow: it leaves a after 100 of the next 400,
	// and comes back on b when all are published.
	round2 := interleaved("r2-", 200)
	sessions = sessions[:0]
	live = startMosqSubCount(t, a, id, topic, 100)
	sessions = append(sessions, live)
	published := make(chan struct{})
	go func() {
		defer close(published)
		mosqPublish(t, topic, 5*time.Millisecond, []mosqPub{{a.addr, round2.a}, {b.addr, round2.b}})
	}()
	ends := uncleanEnds(a)
	live.waitExit(30 * time.Second)
	live.endedBy(a, ends)
	leftAfter := len(live.payloads())
	<-published
	back := startMosqSub(t, b, id, topic)
	back.waitFor(notIn(round2.all, sessions...), 15*time.Second)
	sessions = append(sessions, back)
	back.stop()
	r2 := mosqCount(sessions, round2.all)
	t.Logf("moving: %d on a before it left, %d on b after; %v", leftAfter, len(back.payloads()), r2)
	r2.check(t, "left a mid-stream, back on b")
	if t.Failed() {
		t.Logf("node a log:\n%s\nnode b log:\n%s", warnings(a.errOut(), 10), warnings(b.errOut(), 10))
	}
}

func mosquittoRacing(t *testing.T, storeURL string) {
	a := startBroker(t, "-store", storeURL, "-node", "a")
	const topic = "race/t"
	id := testenv.FreshName("cli-racer-")
	// Subscribe once (the session keeps it), then stay for the first
	// 2,000 messages while four publishers race.
	sub := startMosqSubCount(t, a, id, topic, 2000)
	pubs := make([]mosqPub, 4) // four publishers on the one node
	var all []string
	for k := range pubs {
		pubs[k].addr = a.addr
		for i := range 3000 {
			p := fmt.Sprintf("p%d-%d", k, i)
			pubs[k].lines = append(pubs[k].lines, p)
			all = append(all, p)
		}
	}
	published := make(chan struct{})
	start := time.Now()
	var pubTime time.Duration
	go func() {
		defer close(published)
		mosqPublish(t, topic, 0, pubs)
		pubTime = time.Since(start)
	}()
	ends := uncleanEnds(a)
	sub.waitExit(60 * time.Second)
	sub.endedBy(a, ends)
	cut := len(sub.payloads())
	<-published
	time.Sleep(500 * time.Millisecond)
	back := startMosqSub(t, a, id, topic)
	backAt := time.Now()
	back.waitFor(notIn(all, sub), 60*time.Second)
	backTime := time.Since(backAt) - quiet
	back.stop()
	r := mosqCount([]*mosqSub{sub, back}, all)
	t.Logf("4 × 3,000 racing on one node, published in %v: %d received before the cut, %d after reconnecting (in %v); %v",
		pubTime.Round(time.Millisecond), cut, len(back.payloads()), backTime.Round(time.Millisecond), r)
	r.check(t, "racing publishers")
	if t.Failed() {
		t.Logf("broker log:\n%s", warnings(a.errOut(), 10))
	}
}

// split is messages published on node a and on node b, and all of them.
type split struct{ a, b, all []string }

// interleaved returns n payloads for node a and n for node b, and all 2n
// in the order they are fed to the publishers: a0, b0, a1, b1, …
func interleaved(prefix string, n int) split {
	var s split
	for i := range n {
		pa, pb := fmt.Sprintf("%sa%d", prefix, i), fmt.Sprintf("%sb%d", prefix, i)
		s.a, s.b, s.all = append(s.a, pa), append(s.b, pb), append(s.all, pa, pb)
	}
	return s
}

// mosqPub is one publisher of mosqPublish: the broker it publishes to and
// its payloads.
type mosqPub struct {
	addr  string
	lines []string
}

// mosqPublish runs one mosquitto_pub -l (QoS 1, MQTT 3.1.1) per publisher,
// all at once, and feeds them their lines in turn, one line each per
// round (with gap between rounds), then waits until all exited: each
// waits for its PUBACKs before it leaves.
func mosqPublish(t *testing.T, topic string, gap time.Duration, publishers []mosqPub) {
	type pub struct {
		cmd   *exec.Cmd
		in    io.WriteCloser
		lines []string
		out   strings.Builder
	}
	var pubs []*pub
	n := 0
	for _, mp := range publishers {
		host, port, _ := strings.Cut(mp.addr, ":")
		ls := mp.lines
		p := &pub{lines: ls}
		p.cmd = exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv311", "-i", testenv.FreshName("cli-pub-"), "-q", "1", "-t", topic, "-l")
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		in, err := p.cmd.StdinPipe()
		if err != nil {
			t.Error(err)
			return
		}
		p.in = bufioWriteCloser(in)
		if err := p.cmd.Start(); err != nil {
			t.Errorf("mosquitto_pub: %v", err)
			return
		}
		pubs = append(pubs, p)
		n = max(n, len(ls))
	}
	for i := range n {
		for _, p := range pubs {
			if i < len(p.lines) {
				io.WriteString(p.in, p.lines[i]+"\n")
			}
		}
		if gap > 0 {
			for _, p := range pubs {
				p.in.(*flushCloser).Flush()
			}
			time.Sleep(gap)
		}
	}
	for _, p := range pubs {
		p.in.Close()
	}
	for _, p := range pubs {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("mosquitto_pub: %v\n%s", err, p.out.String())
			}
		case <-time.After(60 * time.Second):
			p.cmd.Process.Kill()
			t.Errorf("mosquitto_pub did not finish in 60s\n%s", p.out.String())
		}
	}
}

// flushCloser is a buffered stdin that flushes on Close.
type flushCloser struct {
	*bufio.Writer
	c io.Closer
}

func (f *flushCloser) Close() error {
	err := f.Flush()
	if cerr := f.c.Close(); err == nil {
		err = cerr
	}
	return err
}

func bufioWriteCloser(w io.WriteCloser) io.WriteCloser {
	return &flushCloser{Writer: bufio.NewWriter(w), c: w}
}

// mosqSub is one run of mosquitto_sub with -d: a connection of a
// persistent subscriber (-c -i ID -q 1), whose output is parsed as it comes.
type mosqSub struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	more chan struct{}

	mu           sync.Mutex
	got          []mosqReceipt
	subscribed   bool
	disconnected bool // it sent DISCONNECT
	lastMid      string
	acked        bool // the PUBLISH being read was PUBACKed before DISCONNECT
	log          strings.Builder
}

type mosqReceipt struct {
	payload string
	acked   bool
}

var (
	mosqPublishLine = regexp.MustCompile(`^Client \S+ received PUBLISH \(d\d, q(\d), r\d, m(\d+),`)
	mosqPubackLine  = regexp.MustCompile(`^Client \S+ sending PUBACK \(m(\d+),`)
)

// startMosqSub starts mosquitto_sub for client id on b, subscribed to
// topic at QoS 1 with clean session off, and waits for its SUBACK. It
// runs until stop.
func startMosqSub(t *testing.T, b *broker, id, topic string) *mosqSub {
	t.Helper()
	return startMosqSubArgs(t, b, id, topic)
}

// startMosqSubCount is startMosqSub for a subscriber that disconnects by
// itself after n messages (mosquitto_sub -C n); wait for it with
// waitExit. A subscriber cut off while messages flow is cut so, not with
// SIGINT: mosquitto_sub disconnects from its signal handler, which can
// deadlock on the library's lock when the signal comes while it is
// sending (seen in CI: no exit 30 s after SIGINT, mid-stream).
func startMosqSubCount(t *testing.T, b *broker, id, topic string, n int) *mosqSub {
	t.Helper()
	return startMosqSubArgs(t, b, id, topic, "-C", strconv.Itoa(n))
}

func startMosqSubArgs(t *testing.T, b *broker, id, topic string, extra ...string) *mosqSub {
	t.Helper()
	host, port, _ := strings.Cut(b.addr, ":")
	// stdbuf: mosquitto_sub's debug lines are block-buffered into a pipe.
	s := &mosqSub{t: t, done: make(chan struct{}), more: make(chan struct{}, 1)}
	args := []string{"-oL", "mosquitto_sub", "-h", host, "-p", port, "-V", "mqttv311", "-i", id, "-c", "-q", "1", "-t", topic, "-d", "-F", "%t %p"}
	s.cmd = exec.Command("stdbuf", append(args, extra...)...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = writerFunc(func(p []byte) { s.mu.Lock(); s.log.Write(p); s.mu.Unlock() })
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.line(sc.Text(), topic)
		}
		s.cmd.Wait()
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		ok := s.subscribed
		s.mu.Unlock()
		if ok {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("mosquitto_sub %s on %s ended before subscribing:\n%s", id, b.addr, s.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub %s on %s: no SUBACK in 10s:\n%s", id, b.addr, s.output())
		}
	}
}

func (s *mosqSub) line(l, topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log.Len() < 1<<16 {
		s.log.WriteString(l + "\n")
	}
	switch {
	case strings.HasPrefix(l, "Subscribed (mid:"):
		s.subscribed = true
	case strings.HasPrefix(l, topic+" "):
		s.got = append(s.got, mosqReceipt{payload: strings.TrimPrefix(l, topic+" "), acked: s.acked})
		s.acked = false
		select {
		case s.more <- struct{}{}:
		default:
		}
	case strings.HasPrefix(l, "Client "):
		if m := mosqPublishLine.FindStringSubmatch(l); m != nil {
			s.lastMid, s.acked = m[2], false
		} else if m := mosqPubackLine.FindStringSubmatch(l); m != nil {
			s.acked = m[1] == s.lastMid && !s.disconnected
		} else if strings.Contains(l, " sending DISCONNECT") {
			s.disconnected = true
		}
	}
}

func (s *mosqSub) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *mosqSub) payloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.got))
	for i, r := range s.got {
		out[i] = r.payload
	}
	return out
}

// waitFor waits until it received every message of want (or timeout),
// then a moment more for anything repeated.
func (s *mosqSub) waitFor(want []string, timeout time.Duration) {
	need := make(map[string]bool, len(want))
	for _, w := range want {
		need[w] = true
	}
	deadline := time.After(timeout)
	seen := 0
	for {
		s.mu.Lock()
		for _, r := range s.got[seen:] {
			delete(need, r.payload)
		}
		seen = len(s.got)
		s.mu.Unlock()
		if len(need) == 0 {
			time.Sleep(quiet)
			return
		}
		select {
		case <-s.more:
		case <-deadline:
			return
		}
	}
}

// stop ends mosquitto_sub with SIGINT, on which it sends DISCONNECT.
// Use it when no messages are flowing to the subscriber (see
// startMosqSubCount).
func (s *mosqSub) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second): // it may have thousands of messages to print first
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("mosquitto_sub did not stop within 30s of SIGINT:\n%s", s.output())
	}
	s.checkDisconnected()
}

// waitExit waits until a subscriber of startMosqSubCount has received
// its messages and disconnected.
func (s *mosqSub) waitExit(timeout time.Duration) {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("mosquitto_sub -C received %d messages in %v and did not exit:\n%s", len(s.payloads()), timeout, tail(s.output(), 10))
	}
	s.checkDisconnected()
}

// uncleanEnds counts the connections broker b saw end without a
// DISCONNECT (its listener logs the read error: EOF, a reset).
func uncleanEnds(b *broker) int { return strings.Count(b.errOut(), "listener=tcp error=") }

// endedBy handles a subscriber cut off mid-stream (startMosqSubCount):
// mosquitto_sub -C exits with messages still arriving and may close its
// socket before it wrote the PUBACKs and the DISCONNECT it logged as
// sent, or with a reset that drops what the broker had not read yet.
// When broker b saw a connection end that way since it had seen ends
// of them, the subscriber's PUBACKs prove nothing: what comes again
// counts as redelivered (allowed), not twice. It waits a moment for the
// broker's log.
func (s *mosqSub) endedBy(b *broker, ends int) {
	s.t.Helper()
	time.Sleep(200 * time.Millisecond)
	if uncleanEnds(b) == ends {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.got {
		s.got[i].acked = false
	}
	s.t.Logf("%s: the connection of mosquitto_sub, cut mid-stream, ended without a DISCONNECT the broker read: its PUBACKs may not have been read either, so messages it received count as unacknowledged", b.addr)
}

func (s *mosqSub) checkDisconnected() {
	s.t.Helper()
	s.mu.Lock()
	d := s.disconnected
	s.mu.Unlock()
	if !d {
		s.t.Errorf("mosquitto_sub did not send DISCONNECT on SIGINT:\n%s", tail(s.output(), 10))
	}
}

// notIn returns the messages of want that none of sessions received.
func notIn(want []string, sessions ...*mosqSub) []string {
	got := map[string]bool{}
	for _, s := range sessions {
		for _, p := range s.payloads() {
			got[p] = true
		}
	}
	var out []string
	for _, w := range want {
		if !got[w] {
			out = append(out, w)
		}
	}
	return out
}

// mosqResult counts what the connections of one subscriber got of want.
type mosqResult struct {
	want, distinct, missing int
	twice                   int // again after a PUBACK sent before DISCONNECT
	redelivered             int // again, never PUBACKed before (allowed)
	extra                   int // not in want
	firstMissing, firstDup  []string
}

func (r mosqResult) String() string {
	s := fmt.Sprintf("%d of %d distinct: missing %d, twice %d (after a PUBACK), redelivered %d (never PUBACKed before, allowed)",
		r.distinct, r.want, r.missing, r.twice, r.redelivered)
	if r.extra > 0 {
		s += fmt.Sprintf(", %d not published", r.extra)
	}
	if len(r.firstMissing) > 0 {
		s += fmt.Sprintf("; first missing %v", r.firstMissing)
	}
	if len(r.firstDup) > 0 {
		s += fmt.Sprintf("; first twice %v", r.firstDup)
	}
	return s
}

func (r mosqResult) check(t *testing.T, what string) {
	t.Helper()
	if r.missing > 0 || r.twice > 0 || r.extra > 0 {
		t.Errorf("%s: %v", what, r)
	}
}

func mosqCount(sessions []*mosqSub, want []string) mosqResult {
	r := mosqResult{want: len(want)}
	type state struct{ n, acked int }
	seen := make(map[string]*state, len(want))
	for _, w := range want {
		seen[w] = &state{}
	}
	for _, s := range sessions {
		s.mu.Lock()
		got := append([]mosqReceipt(nil), s.got...)
		s.mu.Unlock()
		for _, g := range got {
			st := seen[g.payload]
			if st == nil {
				r.extra++
				continue
			}
			if st.n > 0 {
				if st.acked > 0 {
					r.twice++
					if len(r.firstDup) < 5 {
						r.firstDup = append(r.firstDup, g.payload)
					}
				} else {
					r.redelivered++
				}
			}
			st.n++
			if g.acked {
				st.acked++
			}
		}
	}
	for _, w := range want {
		if seen[w].n == 0 {
			r.missing++
			if len(r.firstMissing) < 5 {
				r.firstMissing = append(r.firstMissing, w)
			}
		} else {
			r.distinct++
		}
	}
	return r
}
