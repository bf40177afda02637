package metrics_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/metrics"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// Register a Router's metrics and serve them; here they are gathered and
// printed instead of served.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "metrics-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "mqtt.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	main, err := persist.NewPipeline(store, &persist.PipelineOptions{Name: "main"})
	if err != nil {
		log.Fatal(err)
	}
	defer main.Close()
	router, err := persist.NewRouter(persist.Rule{Name: "all", Filter: "#", Store: main})
	if err != nil {
		log.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg, router); err != nil {
		log.Fatal(err)
	}
	// In a program:
	//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	//	go http.ListenAndServe(":9100", nil)

	for _, p := range []string{"21.5", "21.7"} {
		if err := router.Publish(ctx, &persist.Message{Topic: "sensors/1/temp", Payload: []byte(p), QoS: 1}); err != nil {
			log.Fatal(err)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			switch {
			case m.GetCounter() != nil && strings.Contains(f.GetName(), "written"):
				fmt.Println(f.GetName(), labels, m.GetCounter().GetValue())
			case m.GetHistogram() != nil && strings.HasSuffix(f.GetName(), "batch_size"):
				fmt.Println(f.GetName(), labels, "count", m.GetHistogram().GetSampleCount())
			case f.GetName() == "mqttpersist_store_up":
				fmt.Println(f.GetName(), labels, m.GetGauge().GetValue())
			}
		}
	}
	// Output:
	// mqttpersist_rule_written_total [rule=all] 2
	// mqttpersist_store_batch_size [mode=durable store=main] count 2
	// mqttpersist_store_up [mode=durable store=main] 1
	// mqttpersist_store_written_total [mode=durable store=main] 2
}
