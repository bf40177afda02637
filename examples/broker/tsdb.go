package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/tsdb"
	// The time-series writers, by URL: influxdb, influxdb2, influxdb+udp,
	// opentsdb, opentsdb+telnet, timescale.
	_ "github.com/mqttpersist/mqttpersist/tsdb/influxdb"
	_ "github.com/mqttpersist/mqttpersist/tsdb/opentsdb"
	_ "github.com/mqttpersist/mqttpersist/tsdb/timescale"
)

// tsdbStoreName names the -tsdb writer among the stores and rules.
const tsdbStoreName = "tsdb"

// tsdbURL returns the URL of the -tsdb writer: a postgres:// URL means
// Timescale, and templates (-templates) is added as its templates
// parameter unless the URL has one.
func tsdbURL(raw, templates string) (string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", fmt.Errorf("-tsdb %s: want a URL such as influxdb://host:8086/db, influxdb2://…, influxdb+udp://…, opentsdb://…, opentsdb+telnet://…, timescale://… or postgres://…", persist.Redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		scheme = "timescale"
	}
	u := scheme + "://" + rest
	if templates == "" {
		return u, nil
	}
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("-tsdb %s: %w", persist.Redact(raw), err)
	}
	if p.Query().Get("templates") != "" {
		return "", fmt.Errorf("-tsdb %s names a templates file and so does -templates %s: give one", persist.Redact(raw), templates)
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "templates=" + url.QueryEscape(templates), nil
}

// addTSDB adds the -tsdb writer to the config as the store "tsdb" and a
// rule that sends it every publish (QoS 0 too, as the seeds' time-series
// backends take every message.publish). The rules that named no store are
// given theirs first, since "the only store" changes. With -store none,
// the writer is the only store.
func (c *Config) addTSDB(rawURL, templates string) error {
	u, err := tsdbURL(rawURL, templates)
	if err != nil {
		return err
	}
	if _, dup := c.Stores[tsdbStoreName]; dup {
		return fmt.Errorf("-tsdb: the config already names a store %q", tsdbStoreName)
	}
	if c.Stores[defaultStoreName] == "none" {
		delete(c.Stores, defaultStoreName)
		c.Rules = nil
	}
	for i := range c.Rules {
		c.Rules[i].Store = c.storeName(c.Rules[i])
	}
	c.Stores[tsdbStoreName] = u
	c.Rules = append(c.Rules, RuleConfig{Name: tsdbStoreName, Filter: "#", Store: tsdbStoreName,
		Events: []string{"message.publish"}, QoS0: true})
	return nil
}

// skipReporter is a store that reports the messages its templates skip
// (the tsdb writers).
type skipReporter interface {
	OnSkip(func(tsdb.Skip))
	Stats() tsdb.Stats
}

// watchTSDB logs the messages the time-series writers skip: the first of
// each reason and store at once, then at most one line per reason and
// store every 10 s with how many were skipped meanwhile.
func (o *openedStores) watchTSDB(log *slog.Logger) {
	for _, s := range o.list {
		r, ok := s.store.(skipReporter)
		if !ok {
			continue
		}
		name := s.name
		var mu sync.Mutex
		last := map[tsdb.Reason]time.Time{}
		quiet := map[tsdb.Reason]int{}
		r.OnSkip(func(sk tsdb.Skip) {
			mu.Lock()
			now := time.Now()
			if now.Sub(last[sk.Reason]) < 10*time.Second {
				quiet[sk.Reason]++
				mu.Unlock()
				return
			}
			more := quiet[sk.Reason]
			last[sk.Reason], quiet[sk.Reason] = now, 0
			mu.Unlock()
			log.Warn("tsdb: message skipped for a template", "store", name, "reason", sk.Reason.String(),
				"template", sk.Template.String(), "topic", sk.Message.Topic, "error", sk.Err, "also_skipped", more)
		})
	}
}

// registerTSDB exports the counters of the time-series writers:
// mqttpersist_tsdb_messages_total, _points_total and
// _skipped_total{reason}, labelled with the store.
func registerTSDB(reg prometheus.Registerer, o *openedStores) error {
	for _, s := range o.list {
		r, ok := s.store.(skipReporter)
		if !ok {
			continue
		}
		labels := prometheus.Labels{"store": s.name}
		cs := []prometheus.Collector{
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mqttpersist", Subsystem: "tsdb", Name: "messages_total",
				Help: "Messages a template of the time-series writer matched.", ConstLabels: labels},
				func() float64 { return float64(r.Stats().Messages) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mqttpersist", Subsystem: "tsdb", Name: "points_total",
				Help: "Points (rows) the time-series writer rendered.", ConstLabels: labels},
				func() float64 { return float64(r.Stats().Points) }),
		}
		for _, reason := range tsdb.Reasons {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mqttpersist", Subsystem: "tsdb", Name: "skipped_total",
				Help:        "Messages skipped for a template, by reason (each logged, at most one line per reason every 10 s).",
				ConstLabels: prometheus.Labels{"store": s.name, "reason": reason.String()}},
				func() float64 { return float64(r.Stats().Skipped[reason]) }))
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return err
			}
		}
	}
	return nil
}
