package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Config is the broker's -config file. Unknown fields are errors, so a typo
// stops the broker at start instead of being ignored:
//
//	node: edge-1
//	mode: async                  # durable (default) | async (-mode)
//	outbox: ./data/outbox        # async outbox, a subdirectory per store (-outbox)
//	outbox_bytes: 268435456      # bound of each store's outbox (-outbox-bytes)
//	overflow: block              # block | drop-oldest, when an outbox is full (-overflow)
//	metrics: 127.0.0.1:9100      # serve /metrics there (-metrics; default off)
//	listen: ":8883"              # the MQTT listener (-listen; default 127.0.0.1:1883 without auth)
//	ws: ":8084"                  # MQTT over WebSocket (-ws; default none)
//	auth: ./users.yaml           # users, bcrypt passwords, ACLs (-auth; see auth.go)
//	allow_anonymous: false       # no auth beyond loopback (-allow-anonymous)
//	tls_cert: ./server.pem       # TLS on the listeners (-tls-cert, -tls-key)
//	tls_key: ./server-key.pem
//	tls_ca: ./clients-ca.pem     # clients must present a certificate it signed (-tls-ca)
//	tsdb: influxdb://localhost:8086/mqtt  # a time-series writer of every publish (-tsdb; see tsdb.go)
//	templates: ./emqx_backend_influxdb.tmpl  # its templates, the seeds' format (-templates)
//	stores:                      # name → URL (sqlite://, postgres://, mysql://)
//	  main: sqlite://./data/mqtt.db
//	rules:                       # in order: for one store, the first matching rule decides
//	  - name: jobs
//	    filter: queue/#          # default "#"
//	    store: main              # default: the only store, or "default" (-store)
//	    mode: queue              # queue | fanout (default)
//	    events: [message.publish, message.acked, message.fetch]  # default: all
//	    qos0: false              # store QoS 0 publishes too
//	    expiry: 24h              # default message expiry (a reference backend's expired_after)
//	    offline: {limit: 500, since: 2h, lease: 30s}  # a reference backend's offline_opts
//	    history: false           # new fanout subscribers see older messages
//	  - name: everything
//	    filter: "#"
//
// Without rules, the default rules apply: queue/# as a queue, # as fanout.
// A flag given on the command line wins over the same key in the file.
type Config struct {
	Node        string            `yaml:"node"`
	Mode        string            `yaml:"mode"`
	Outbox      string            `yaml:"outbox"`
	OutboxBytes *int64            `yaml:"outbox_bytes"`
	Overflow    string            `yaml:"overflow"`
	Metrics     string            `yaml:"metrics"`
	TSDB        string            `yaml:"tsdb"`
	Templates   string            `yaml:"templates"`
	Stores      map[string]string `yaml:"stores"`
	Rules       []RuleConfig      `yaml:"rules"`

	// listen, ws, auth, allow_anonymous, tls_cert, tls_key, tls_ca.
	SecurityConfig `yaml:",inline"`
}

// RuleConfig is one rule of a Config; see persist.Rule for the meaning.
type RuleConfig struct {
	Name    string   `yaml:"name"`
	Filter  string   `yaml:"filter"`
	Store   string   `yaml:"store"`
	Mode    string   `yaml:"mode"`
	Events  []string `yaml:"events"`
	QoS0    bool     `yaml:"qos0"`
	Expiry  Duration `yaml:"expiry"`
	History bool     `yaml:"history"`
	Offline struct {
		Limit int      `yaml:"limit"`
		Since Duration `yaml:"since"`
		Lease Duration `yaml:"lease"`
	} `yaml:"offline"`
}

// Duration is a time.Duration written as "90s", "2h" or "1d" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration, with "d" for days as the seeds write
// time_range.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s := n.Value
	if len(s) > 1 && s[len(s)-1] == 'd' {
		var days int
		if _, err := fmt.Sscanf(s, "%dd", &days); err == nil && fmt.Sprintf("%dd", days) == s {
			*d = Duration(time.Duration(days) * 24 * time.Hour)
			return nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: bad duration %q (want e.g. 30s, 2h, 1d)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// defaultStoreName names the -store store in rules.
const defaultStoreName = "default"

// loadConfig reads file (if any) and adds storeURL (-store) as the store
// "default"; with neither, the default store is DefaultStore.
func loadConfig(file, storeURL string) (*Config, error) {
	cfg := &Config{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("-config %s: %w", file, err)
		}
	}
	if cfg.Stores == nil {
		cfg.Stores = map[string]string{}
	}
	if storeURL != "" {
		if _, dup := cfg.Stores[defaultStoreName]; dup {
			return nil, fmt.Errorf("-store %s: the config file %s already names a store %q", persist.Redact(storeURL), file, defaultStoreName)
		}
		cfg.Stores[defaultStoreName] = storeURL
	}
	if len(cfg.Stores) == 0 {
		cfg.Stores[defaultStoreName] = DefaultStore
	}
	if len(cfg.Rules) == 0 {
		cfg.Rules = []RuleConfig{
			{Name: "queue", Filter: "queue/#", Mode: "queue"},
			{Name: "fanout", Filter: "#", Mode: "fanout"},
		}
	}
	for name, u := range cfg.Stores {
		if u == "" {
			return nil, fmt.Errorf("-config %s: store %q has no URL", file, name)
		}
	}
	return cfg, nil
}

// rules turns the config's rules into persist rules on the opened stores.
func (c *Config) rules(stores *openedStores) ([]persist.Rule, error) {
	out := make([]persist.Rule, 0, len(c.Rules))
	for i, rc := range c.Rules {
		what := fmt.Sprintf("rule %d", i)
		if rc.Name != "" {
			what = fmt.Sprintf("rule %d (%s)", i, rc.Name)
		}
		storeName := c.storeName(rc)
		s, ok := stores.byName[storeName]
		if !ok {
			return nil, fmt.Errorf("config: %s: unknown store %q (stores: %s)", what, storeName, stores.names())
		}
		r := persist.Rule{
			Name:    rc.Name,
			Filter:  rc.Filter,
			Store:   s.pipe,
			QoS0:    rc.QoS0,
			Expiry:  time.Duration(rc.Expiry),
			History: rc.History,
			Offline: persist.Fetch{Limit: rc.Offline.Limit, Since: time.Duration(rc.Offline.Since), Lease: time.Duration(rc.Offline.Lease)},
		}
		if rc.Mode != "" {
			m, err := persist.ParseMode(rc.Mode)
			if err != nil {
				return nil, fmt.Errorf("config: %s: %w", what, err)
			}
			r.Mode = m
		}
		for _, e := range rc.Events {
			ev, err := persist.ParseEvent(e)
			if err != nil {
				return nil, fmt.Errorf("config: %s: %w", what, err)
			}
			r.Events |= ev
		}
		out = append(out, r)
	}
	return out, nil
}

// storeName is the store a rule config names, or the default one.
func (c *Config) storeName(rc RuleConfig) string {
	if rc.Store != "" {
		return rc.Store
	}
	if len(c.Stores) == 1 {
		for name := range c.Stores {
			return name
		}
	}
	return defaultStoreName
}

// storeOf is the store name of the rule called name, for printing.
func (c *Config) storeOf(rule string) string {
	for _, rc := range c.Rules {
		if rc.Name == rule {
			return c.storeName(rc)
		}
	}
	return "?"
}
