package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func broker(t *testing.T) string {
	t.Helper()
	server := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return tcp.Address()
}

// TestJSON: -json prints one object with the options, the totals and a
// count per member of the share group, which got every message once
// between them.
func TestJSON(t *testing.T) {
	addr := broker(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-addr", addr, "-publishers", "3", "-messages", "100", "-subscribers", "3", "-share", "g", "-qos", "2", "-topics", "2", "-payload", "20", "-json", "-quiet"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr %q; stdout %q", code, stderr.String(), stdout.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("-quiet, yet stderr %q", stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 {
		t.Errorf("%d lines on stdout, want one JSON object: %s", n, stdout.String())
	}
	var r report
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	o := r.Options
	if o.Addr != addr || o.Publishers != 3 || o.Messages != 100 || o.QoS != 2 || o.Topics != 2 || o.Payload != 20 || o.Subscribers != 3 || o.Share != "g" || o.Topic != "load" || o.Duration != "" {
		t.Errorf("options %+v, want those of the command line", o)
	}
	if r.Published != 300 || r.Expected != 300 || r.Delivered != 300 || r.Missing != 0 || r.Duplicates != 0 || !r.OK {
		t.Errorf("got %+v, want 300 messages to the group once each", r)
	}
	sum := 0
	for _, s := range r.Subscribers {
		if s.ID == "" || s.Duplicates != 0 || s.Received != s.Delivered {
			t.Errorf("member %+v: want its share once", s)
		}
		sum += s.Delivered
	}
	if len(r.Subscribers) != 3 || sum != 300 {
		t.Errorf("members %+v: want 3 with 300 between them", r.Subscribers)
	}
	if r.Rate <= 0 || r.PublishRate <= 0 || r.ElapsedMS <= 0 || r.PublishElapsedMS <= 0 {
		t.Errorf("rates %v, %v over %v, %v ms: want positive", r.Rate, r.PublishRate, r.ElapsedMS, r.PublishElapsedMS)
	}
	l := r.LatencyMS
	if len(l) != 5 || l["p50"] <= 0 || l["p50"] > l["p90"] || l["p90"] > l["p99"] || l["p99"] > l["p99.9"] || l["p99.9"] > l["max"] || l["max"] > r.ElapsedMS {
		t.Errorf("latency percentiles %v: want p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max ≤ elapsed %v", l, r.ElapsedMS)
	}
}

// TestText: without -json, a summary line and a line per fanout
// subscriber; the progress line on stderr; -duration runs.
func TestText(t *testing.T) {
	addr := broker(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-addr", addr, "-publishers", "2", "-duration", "700ms", "-subscribers", "2"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr %q; stdout %q", code, stderr.String(), stdout.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "to 2 subscribers, duplicates 0, missing 0") || !strings.Contains(lines[0], "p99.9") ||
		!strings.Contains(lines[1], "duplicates 0, missing 0") || !strings.Contains(lines[2], "duplicates 0, missing 0") {
		t.Errorf("stdout %q: want a summary and two subscribers, none missing", stdout.String())
	}
	if e := stderr.String(); !strings.Contains(e, "\r") || !strings.Contains(e, "msgs/s so far") {
		t.Errorf("stderr %q: want a progress line", e)
	}
}

// TestUsage: flags that cannot run exit 2.
func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-qos", "3"},
		{"-messages", "10", "-duration", "1s"},
		{"-subscribers", "0"},
		{"-share", "a/b"},
		{"-duration", "10m"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"-addr", "127.0.0.1:1"}, args...), &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a reason", args, code, stderr.String())
		}
	}
}
