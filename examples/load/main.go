// Command load measures an MQTT broker: publishers send QoS 1 (or 0, 2)
// messages as fast as their acks allow while persistent subscribers count
// what arrives, and it reports the publish→deliver rate, latency
// percentiles and every message lost or repeated.
//
//	go run ./examples/broker -listen 127.0.0.1:1883 &
//	go run ./examples/load -addr 127.0.0.1:1883 -publishers 10 -messages 2000
//	go run ./examples/load -subscribers 3              # fanout: each of 3 gets every message
//	go run ./examples/load -subscribers 3 -share g     # $share/g/load/#: each message to one of 3
//	go run ./examples/load -duration 10s -qos 2 -topics 4 -json
//
// Publisher p publishes to <topic>/<p> (with -topics K: <topic>/<p mod K>);
// the subscribers subscribe to <topic>/# (with -share G: $share/G/<topic>/#)
// with sessions that outlive the connection, ended when the run is over.
// -messages M publishes M messages per publisher; -duration D instead
// publishes for D, then waits for the deliveries. While it runs a progress
// line on stderr is updated every 500 ms (-quiet: none). It prints a
// summary line (and a line per subscriber when there are several), or with
// -json one JSON object: the options, totals, rates, latency percentiles in
// milliseconds, per-subscriber counts, missing and duplicates.
//
// It exits 1 when a QoS 1 or 2 message was lost or delivered twice (to any
// fanout subscriber, or to the share group as a whole); QoS 0 messages may
// be lost, and are only reported. It exits 2 when it cannot run. It sends
// traffic only to -addr; point it at your own broker.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/examples/load/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command with args, writing the result to stdout and the
// progress and errors to stderr, and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o loadgen.Options
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:1883", "broker `address` (host:port)")
	fs.IntVar(&o.Publishers, "publishers", 10, "concurrent publishers")
	fs.IntVar(&o.Messages, "messages", 2000, "messages per publisher (unless -duration)")
	fs.DurationVar(&o.Duration, "duration", 0, "publish for this long instead of -messages, then wait for the deliveries")
	qos := fs.Uint("qos", 1, "QoS of publishes and subscriptions (0, 1 or 2)")
	fs.IntVar(&o.Payload, "payload", 64, "payload `bytes`")
	fs.StringVar(&o.Topic, "topic", "load", "topic prefix")
	fs.IntVar(&o.Topics, "topics", 0, "spread the publishers over `K` topics <topic>/<p mod K> (0: a topic per publisher, <topic>/<p>)")
	fs.IntVar(&o.Subscribers, "subscribers", 1, "subscribers; each gets every message, or with -share the group's members share them")
	fs.StringVar(&o.Share, "share", "", "subscribe as the members of the shared subscription `group` $share/GROUP/<topic>/#: each message must arrive at exactly one")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up after this long")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		fmt.Fprintln(stderr, "load: unexpected arguments:", strings.Join(fs.Args(), " "))
		return 2
	case *qos > 2 || o.Publishers < 1 || o.Messages < 1 || o.Subscribers < 1 || o.Topics < 0 || o.Duration < 0:
		fmt.Fprintln(stderr, "load: -qos must be 0, 1 or 2, -publishers, -messages and -subscribers at least 1, -topics and -duration not negative")
		return 2
	case set["messages"] && set["duration"]:
		fmt.Fprintln(stderr, "load: -messages or -duration, not both")
		return 2
	case o.Duration > 0 && o.Duration >= o.Timeout:
		fmt.Fprintln(stderr, "load: -duration must be shorter than -timeout")
		return 2
	case strings.ContainsAny(o.Share, "/+#"):
		fmt.Fprintln(stderr, "load: -share must be a group name without /, + or #")
		return 2
	}
	if o.Duration > 0 {
		o.Messages = 0
	}
	o.QoS = byte(*qos)
	o.DropSessions = true
	progressed := false
	if !*quiet {
		o.Progress = func(p loadgen.Progress) {
			rate := 0.0
			if p.Elapsed > 0 {
				rate = float64(p.Delivered) / p.Elapsed.Seconds()
			}
			of := ""
			if p.Total > 0 {
				of = fmt.Sprintf("/%d", p.Total)
			}
			fmt.Fprintf(stderr, "\r\033[Kpublished %d%s, delivered %d, %.0f msgs/s so far (%v)",
				p.Published, of, p.Delivered, rate, p.Elapsed.Round(100*time.Millisecond))
			progressed = true
		}
	}
	r, err := loadgen.Run(ctx, o)
	if progressed {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	if *asJSON {
		b, err := json.Marshal(reportOf(o, r))
		if err != nil {
			fmt.Fprintln(stderr, "load:", err)
			return 2
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintln(stdout, r)
		if len(r.Subscribers) > 1 {
			for _, s := range r.Subscribers {
				if r.Share != "" {
					fmt.Fprintf(stdout, "  %s: received %d, its share %d, duplicates %d\n", s.ID, s.Received, s.Delivered, s.Duplicates)
				} else {
					fmt.Fprintf(stdout, "  %s: received %d, delivered %d, duplicates %d, missing %d\n", s.ID, s.Received, s.Delivered, s.Duplicates, s.Missing)
				}
			}
		}
	}
	if r.Failed() {
		return 1
	}
	return 0
}

// report is the -json output.
type report struct {
	Options struct {
		Addr        string `json:"addr"`
		Publishers  int    `json:"publishers"`
		Messages    int    `json:"messages,omitempty"` // per publisher
		Duration    string `json:"duration,omitempty"`
		QoS         byte   `json:"qos"`
		Payload     int    `json:"payload"`
		Topic       string `json:"topic"`
		Topics      int    `json:"topics"` // 0: a topic per publisher
		Subscribers int    `json:"subscribers"`
		Share       string `json:"share,omitempty"`
	} `json:"options"`
	Published        int     `json:"published"`
	Expected         int     `json:"expected"` // deliveries of a complete run
	Delivered        int     `json:"delivered"`
	Missing          int     `json:"missing"`
	Duplicates       int     `json:"duplicates"`
	ElapsedMS        float64 `json:"elapsed_ms"`
	PublishElapsedMS float64 `json:"publish_elapsed_ms"`
	Rate             float64 `json:"rate"`         // deliveries per second
	PublishRate      float64 `json:"publish_rate"` // acknowledged publishes per second
	// LatencyMS is publish→first receipt, by percentile: "p50", "p90",
	// "p99", "p99.9", "max".
	LatencyMS   map[string]float64 `json:"latency_ms"`
	Subscribers []subscriberReport `json:"subscribers"`
	OK          bool               `json:"ok"` // no QoS ≥ 1 message missing or doubled
}

type subscriberReport struct {
	ID         string `json:"id"`
	Received   int    `json:"received"`
	Delivered  int    `json:"delivered"`
	Duplicates int    `json:"duplicates"`
	Missing    int    `json:"missing"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func reportOf(o loadgen.Options, r loadgen.Result) report {
	var j report
	j.Options.Addr, j.Options.Publishers, j.Options.Messages = o.Addr, o.Publishers, o.Messages
	if o.Duration > 0 {
		j.Options.Duration = o.Duration.String()
	}
	j.Options.QoS, j.Options.Payload, j.Options.Topic, j.Options.Topics = o.QoS, o.Payload, o.Topic, o.Topics
	j.Options.Subscribers, j.Options.Share = o.Subscribers, o.Share
	j.Published, j.Expected, j.Delivered, j.Missing, j.Duplicates = r.Published, r.Expected, r.Delivered, r.Missing, r.Duplicates
	j.ElapsedMS, j.PublishElapsedMS = ms(r.Elapsed), ms(r.PublishElapsed)
	j.Rate, j.PublishRate = r.Rate(), r.PublishRate()
	j.LatencyMS = map[string]float64{
		"p50": ms(r.Percentile(0.5)), "p90": ms(r.Percentile(0.9)), "p99": ms(r.Percentile(0.99)),
		"p99.9": ms(r.Percentile(0.999)), "max": ms(r.Percentile(1)),
	}
	j.Subscribers = []subscriberReport{}
	for _, s := range r.Subscribers {
		j.Subscribers = append(j.Subscribers, subscriberReport(s))
	}
	j.OK = !r.Failed()
	return j
}
