package main

import (
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// metricsHandler serves reg at /metrics.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// registerHook exports the hook's counters (mochi.Stats) as
// mqttpersist_broker_*_total; persist/metrics exports the Router's and the
// pipelines'.
func registerHook(reg prometheus.Registerer, hook *mochi.Hook) error {
	for _, c := range []struct {
		name, help string
		value      func(mochi.Stats) uint64
	}{
		{"stored", "Messages the broker stored for offline delivery.", func(s mochi.Stats) uint64 { return s.Stored }},
		{"live", "Persisted messages delivered to connected clients as they were published.", func(s mochi.Stats) uint64 { return s.Live }},
		{"replayed", "Messages delivered from the store.", func(s mochi.Stats) uint64 { return s.Replayed }},
		{"acked", "Acknowledgements recorded in the store.", func(s mochi.Stats) uint64 { return s.Acked }},
		{"spilled", "Live messages a client could not take in time, left to the store to deliver.", func(s mochi.Stats) uint64 { return s.Spilled }},
		{"failed", "Store calls of the broker hook that failed (each is logged).", func(s mochi.Stats) uint64 { return s.Failed }},
	} {
		value := c.value
		f := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "mqttpersist", Subsystem: "broker", Name: c.name + "_total", Help: c.help,
		}, func() float64 { return float64(value(hook.Stats())) })
		if err := reg.Register(f); err != nil {
			return err
		}
	}
	return nil
}

// displayAddr is a bound address to show in a URL: an unspecified host
// (all interfaces) shows as localhost.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
