package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/internal/mqtttest"
	"github.com/mqttpersist/mqttpersist/internal/testenv"
)

// TestNodesSharedGroup: a shared subscription group is one group across
// three broker processes on one database. Two persistent members of
// $share/work/share/# are on nodes n1 and n2; publishers on n1 and on n3
// (where the group has no member) publish 300 QoS 1 messages each. Every
// message reaches one member, none twice. Then both members leave, 100
// more are published on n3, and one member comes back on n3: it gets the
// 100 the group missed. On every store of TestNodesBehaveAsOne and on
// MongoDB (few enough reads for FerretDB).
func TestNodesSharedGroup(t *testing.T) {
	backends := append(nodeBackends(), testenv.Backend[string]{Name: "mongodb", Open: mongoURL})
	for _, be := range backends {
		t.Run(be.Name, func(t *testing.T) {
			url := be.Open(t)
			var nodes []*broker
			for i := range 3 {
				nodes = append(nodes, startBroker(t, "-store", url, "-node", fmt.Sprintf("n%d", i+1)))
			}
			const group = "$share/work/share/#"
			session := mqtttest.Options{Expiry: 3600}
			m1 := mqtttest.Dial(t, nodes[0].addr, "share-m1", session)
			m1.Subscribe(group, 1)
			m2 := mqtttest.Dial(t, nodes[1].addr, "share-m2", session)
			m2.Subscribe(group, 1)
			var want []string
			start := time.Now()
			done := make(chan []string, 2)
			for _, n := range []int{0, 2} {
				go func() {
					pub := mqtttest.Dial(t, nodes[n].addr, fmt.Sprintf("share-pub-%d", n), mqtttest.Options{Clean: true})
					ps := mqtttest.Numbered(fmt.Sprintf("n%d-", n+1), 300)
					for _, p := range ps {
						pub.Publish("share/t", []byte(p), 1, false)
					}
					pub.Disconnect()
					done <- ps
				}()
			}
			want = append(<-done, <-done...)
			deadline := time.Now().Add(60 * time.Second)
			for len(m1.Received())+len(m2.Received()) < len(want) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			all := time.Since(start)
			time.Sleep(quiet) // a duplicate would come now
			got1, got2 := mqtttest.Payloads(m1.Received()), mqtttest.Payloads(m2.Received())
			t.Logf("%d messages (half published on the node without a member) in %v: %d to the member on n1, %d to the one on n2",
				len(want), all.Round(time.Millisecond), len(got1), len(got2))
			got := append(append([]string(nil), got1...), got2...)
			if d := mqtttest.Diff(mqtttest.Sorted(got), mqtttest.Sorted(want)); d != "" {
				t.Fatalf("the group's members together: %s", d)
			}
			for _, m := range []*mqtttest.Client{m1, m2} {
				if !m.Flush(10 * time.Second) {
					t.Fatal("a member did not send its PUBACKs within 10s")
				}
				m.Disconnect()
			}
			pub := mqtttest.Dial(t, nodes[2].addr, "share-pub-late", mqtttest.Options{Clean: true})
			missed := mqtttest.Numbered("missed-", 100)
			for _, p := range missed {
				pub.Publish("share/t", []byte(p), 1, false)
			}
			back := mqtttest.Dial(t, nodes[2].addr, "share-m2", session)
			if d := mqtttest.Diff(mqtttest.Payloads(back.WaitFor(len(missed), 20*time.Second, quiet)), missed); d != "" {
				t.Fatalf("the member back on n3: %s", d)
			}
		})
	}
}
