package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/sqlstore"
)

// TestCompose runs the template: a sensor reading published while the
// subscriber is away reaches it when it comes back, and the audit table
// records the connects and the publish.
func TestCompose(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", dir, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("not listening after 30s")
	}

	sub := mqtttest.Dial(t, addr, "dashboard", mqtttest.Options{Expiry: 3600})
	sub.Subscribe("sensors/#", 0)
	sub.Disconnect()
	pub := mqtttest.Dial(t, addr, "sensor-7", mqtttest.Options{Clean: true})
	pub.Publish("sensors/7/temp", []byte("21.5"), 0, false)
	pub.Publish("jobs/resize", []byte("img-1"), 1, false)
	sub = mqtttest.Dial(t, addr, "dashboard", mqtttest.Options{Expiry: 3600})
	if got := sub.WaitFor(1, 30*time.Second, time.Second); string(got[0].Payload) != "21.5" || len(got) != 1 {
		t.Fatalf("dashboard got %s, want the one QoS 0 reading", mqtttest.Summary(got))
	}
	worker := mqtttest.Dial(t, addr, "worker", mqtttest.Options{Expiry: 3600})
	worker.Subscribe("jobs/#", 1)
	if got := worker.WaitFor(1, 30*time.Second, time.Second); string(got[0].Payload) != "img-1" || len(got) != 1 {
		t.Fatalf("worker got %s, want the queued job", mqtttest.Summary(got))
	}
	sub.Disconnect()
	worker.Disconnect()
	pub.Disconnect()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	st, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(dir, "audit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int64
	st.DB().Raw("select count(*) from audit where event = 'publish' and clientid = 'sensor-7' and topic = 'sensors/7/temp' and qos = 0").Scan(&n)
	if n != 1 {
		t.Errorf("audit has %d rows for the sensor's publish, want 1", n)
	}
	st.DB().Raw("select count(*) from audit where event = 'connected' and clientid = 'dashboard'").Scan(&n)
	if n != 2 {
		t.Errorf("audit has %d connects of dashboard, want 2", n)
	}
}
