package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/mqttpersist/mqttpersist/persist"
	_ "github.com/mqttpersist/mqttpersist/redisstore"
	_ "github.com/mqttpersist/mqttpersist/sqlstore"
)

// Replay after history (-replay): per store, a client subscribes to a
// fresh topic, fetches and acknowledges H messages of it (pages of 1,000,
// as a broker replays), then N more are published and the fetch of those N
// is timed — the fetch a client that comes back makes, with the topic's
// acknowledged history behind its position. The goal is a replay no slower
// after history than on a fresh topic.

// replayPoint is one timed replay.
type replayPoint struct {
	Store   string        `json:"store"`
	History int           `json:"history"`
	N       int           `json:"n"`
	Took    time.Duration `json:"took_ns"`
}

// runReplay measures the replay of n messages after each history, on each
// store ("sqlite", "postgres", "redis"), writes a table to w and the chart
// replay.png to dir (unless dir is "").
func (s *settings) runReplay(ctx context.Context, w io.Writer, stores []string, histories []int, n int, dir string) error {
	var points []replayPoint
	for _, name := range stores {
		st, cleanup, err := s.replayStore(ctx, name)
		if err != nil {
			return err
		}
		for _, h := range histories {
			took, err := replayAfter(ctx, st, fmt.Sprintf("replay-%s-%d", fresh(), h), h, n)
			if err != nil {
				closeStore(st)
				cleanup()
				return fmt.Errorf("%s, history %d: %w", name, h, err)
			}
			fmt.Fprintf(os.Stderr, "%s: replay of %d after %d acknowledged: %v\n", name, n, h, took.Round(time.Millisecond))
			points = append(points, replayPoint{Store: name, History: h, N: n, Took: took})
		}
		closeStore(st)
		if err := cleanup(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: removing the store: %v\n", name, err)
		}
	}
	printReplay(w, points, stores, histories)
	if dir == "" {
		return nil
	}
	return writeReplayChart(filepath.Join(dir, "replay.png"), points, stores)
}

// replayStore opens a fresh store of kind name, migrated.
func (s *settings) replayStore(ctx context.Context, name string) (persist.Store, func() error, error) {
	id := fresh()
	var u string
	cleanup := func() error { return nil }
	switch name {
	case "sqlite":
		u = "sqlite://" + filepath.Join(s.work, "replay-"+id+".db")
	case "postgres":
		if s.postgresURL == "" {
			return nil, nil, fmt.Errorf("-replay postgres needs -postgres or $MQTTPERSIST_POSTGRES_URL")
		}
		pu, drop, err := freshPostgres(ctx, s.postgresURL, "bench_replay_"+id)
		if err != nil {
			return nil, nil, err
		}
		u, cleanup = pu, drop
	case "redis":
		if s.redisURL == "" {
			return nil, nil, fmt.Errorf("-replay redis needs -redis or $MQTTPERSIST_REDIS_URL")
		}
		prefix := "bench-replay-" + id
		ru, err := withQuery(s.redisURL, "prefix", prefix)
		if err != nil {
			return nil, nil, err
		}
		u, cleanup = ru, func() error { return deleteRedisKeys(s.redisURL, prefix) }
	default:
		return nil, nil, fmt.Errorf("-replay-stores: no store %q (sqlite, postgres, redis)", name)
	}
	st, err := persist.Open(ctx, u)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if m, ok := st.(interface{ Migrate(context.Context) error }); ok {
		if err := m.Migrate(ctx); err != nil {
			closeStore(st)
			cleanup()
			return nil, nil, err
		}
	}
	return st, cleanup, nil
}

func closeStore(st persist.Store) {
	if c, ok := st.(persist.Closer); ok {
		c.Close()
	}
}

// replayAfter has client topic's subscriber fetch and acknowledge history
// messages of its topic, then times the fetch of n more.
func replayAfter(ctx context.Context, st persist.Store, topic string, history, n int) (time.Duration, error) {
	client := topic + "-sub"
	if err := st.Subscribed(ctx, client, []persist.Subscription{{Filter: topic, QoS: 1}}, nil); err != nil {
		return 0, err
	}
	publish := func(count int) error {
		for done := 0; done < count; {
			k := min(500, count-done)
			batch := make([]*persist.Message, k)
			for i := range batch {
				batch[i] = &persist.Message{ID: persist.NewID(), Topic: topic, QoS: 1, Time: time.Now(),
					Payload: []byte("replay " + strconv.Itoa(done+i) + " " + strings.Repeat("x", 48))}
			}
			if err := st.Publish(ctx, batch...); err != nil {
				return err
			}
			done += k
		}
		return nil
	}
	if err := publish(history); err != nil {
		return 0, err
	}
	for acked := 0; acked < history; {
		page, err := st.FetchOffline(ctx, client, topic, persist.Fetch{Limit: 1000})
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			return 0, fmt.Errorf("the history's fetch ended after %d of %d", acked, history)
		}
		acks := make([]persist.Ack, len(page))
		for i, m := range page {
			acks[i] = persist.Ack{ID: m.ID, Topic: m.Topic}
		}
		if err := st.Acked(ctx, client, acks...); err != nil {
			return 0, err
		}
		acked += len(page)
	}
	if err := publish(n); err != nil {
		return 0, err
	}
	t0 := time.Now()
	got, err := st.FetchOffline(ctx, client, topic, persist.Fetch{Limit: n})
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if len(got) != n {
		return 0, fmt.Errorf("the replay fetched %d of %d", len(got), n)
	}
	return took, nil
}

func printReplay(w io.Writer, points []replayPoint, stores []string, histories []int) {
	fmt.Fprintf(w, "\nreplay of %d messages after a history of acknowledged messages on the topic (one fetch)\n\n", points[0].N)
	fmt.Fprint(w, "| store |")
	for _, h := range histories {
		fmt.Fprintf(w, " after %s |", thousands(float64(h)))
	}
	fmt.Fprint(w, " last / first |\n|---|")
	for range histories {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprint(w, "---|\n")
	for _, name := range stores {
		fmt.Fprintf(w, "| %s |", name)
		var first, last time.Duration
		for _, p := range points {
			if p.Store != name {
				continue
			}
			if first == 0 {
				first = p.Took
			}
			last = p.Took
			fmt.Fprintf(w, " %s ms |", msNum(p.Took))
		}
		fmt.Fprintf(w, " %.2f |\n", float64(last)/float64(first))
	}
}

func writeReplayChart(path string, points []replayPoint, stores []string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Replay of %s messages vs acknowledged history", thousands(float64(points[0].N)))
	p.X.Label.Text = "messages acknowledged on the topic before"
	p.Y.Label.Text = "replay (ms)"
	p.Y.Min = 0
	var lines []any
	for _, name := range stores {
		var xys plotter.XYs
		for _, pt := range points {
			if pt.Store == name {
				xys = append(xys, plotter.XY{X: float64(pt.History), Y: float64(pt.Took) / 1e6})
			}
		}
		lines = append(lines, name, xys)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}
