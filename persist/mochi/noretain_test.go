package mochi_test

import (
	"testing"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/persist/mochi"
)

// A Router with no rule for retained messages (say, a time-series writer
// and a store of sessions only) starts the broker, which keeps retained
// messages in memory as mochi does.
func TestNoRetainRule(t *testing.T) {
	_, s := sqliteDB(t).open(t)
	r, err := persist.NewRouter(persist.Rule{Store: s, Events: persist.AllEvents &^ persist.OnRetain})
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, r, &mochi.Options{Node: "n"}, nil)
	pub := dial(t, b.addr, "nr-pub", connOpts{Clean: true})
	pub.Publish("nr/t", []byte("kept by mochi"), 1, true)
	sub := dial(t, b.addr, "nr-sub", connOpts{Clean: true})
	sub.Subscribe("nr/#", 1)
	if got := sub.WaitFor(1, 5*time.Second, 200*time.Millisecond); len(got) != 1 || !got[0].Retain {
		t.Fatalf("a new subscriber got %s, want the retained message", summary(got))
	}
}
