package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// summary is one configuration over all its rounds: the median rate and
// CPU per message, latency percentiles over the messages of all rounds,
// the largest peak RSS, and the sums of lost and doubled messages.
type summary struct {
	Name, Label   string
	Rates         []float64 // per round, in round order
	Rate          float64   // median
	RateRatio     float64   // Rate / bare mochi's (0 without it)
	P50, P90      time.Duration
	P99, P999     time.Duration
	CPUPerMsg     float64 // median, µs
	CPURatio      float64 // CPUPerMsg / bare mochi's
	WritesPerMsg  float64 // median
	ServerCPU     float64 // median of ServerCPUPerMsg, µs
	AllocsPerMsg  float64 // median
	PeakRSSMiB    float64
	Lost, Doubled int
	Delivered     int
	Published     int
	Replayed      int // delivered from the store, all rounds (-1: not the example broker)
}

func summarize(list []config, results map[string][]runResult) []summary {
	var out []summary
	for _, c := range list {
		rs := results[c.name]
		s := summary{Name: c.name, Label: c.label}
		if c.kind != "broker" {
			s.Replayed = -1
		}
		var lat []time.Duration
		var cpu, writes, allocs, server []float64
		for _, r := range rs {
			s.Rates = append(s.Rates, r.Rate)
			cpu = append(cpu, r.CPUPerMsg)
			writes = append(writes, r.WritesPerMsg)
			server = append(server, r.ServerCPUPerMsg)
			allocs = append(allocs, r.AllocsPerMsg)
			s.PeakRSSMiB = max(s.PeakRSSMiB, r.PeakRSSMiB)
			s.Lost += r.Lost
			s.Doubled += r.Doubled
			s.Delivered += r.Delivered
			s.Published += r.Published
			lat = append(lat, r.Latencies...)
			if s.Replayed >= 0 {
				s.Replayed += max(r.Replayed, 0)
			}
		}
		slices.Sort(lat)
		s.Rate, s.CPUPerMsg, s.WritesPerMsg, s.AllocsPerMsg = median(s.Rates), median(cpu), median(writes), median(allocs)
		s.ServerCPU = median(server)
		s.P50, s.P90, s.P99, s.P999 = pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99), pct(lat, 0.999)
		out = append(out, s)
	}
	if i := slices.IndexFunc(out, func(s summary) bool { return s.Name == "mochi" }); i >= 0 {
		base := out[i]
		for j := range out {
			if base.Rate > 0 {
				out[j].RateRatio = out[j].Rate / base.Rate
			}
			if base.CPUPerMsg > 0 {
				out[j].CPURatio = out[j].CPUPerMsg / base.CPUPerMsg
			}
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// pct is the latency below which a fraction q of the sorted lat lies.
func pct(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	i := int(q*float64(len(lat))+0.5) - 1
	return lat[min(max(i, 0), len(lat)-1)]
}

// printTable writes the summary as a Markdown table.
func printTable(w io.Writer, s settings, sum []summary) {
	warm := ""
	if s.warmup > 0 {
		warm = fmt.Sprintf(", each after %d unmeasured runs through the same broker and store (-warmup; peak RSS includes them)", s.warmup)
	}
	fmt.Fprintf(w, "\n%d publishers × %d QoS %d messages (%d bytes) → 1 persistent subscriber, %d rounds%s; medians of the rounds, latency percentiles over all messages of all rounds\n\n",
		s.load.Publishers, s.load.Messages, s.load.QoS, s.load.Payload, s.rounds, warm)
	fmt.Fprintln(w, "| configuration | msgs/s (median) | per round | × bare mochi | latency p50 / p99 / p99.9 | broker CPU per msg | × bare mochi | database server CPU per msg | write syscalls per msg | allocations per msg | peak RSS | lost | doubled | from the store |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range sum {
		rounds := make([]string, len(x.Rates))
		for i, r := range x.Rates {
			rounds[i] = thousands(r)
		}
		replayed := "—"
		if x.Replayed >= 0 {
			replayed = thousands(float64(x.Replayed))
		}
		writes := "—"
		if x.WritesPerMsg > 0 {
			writes = fmt.Sprintf("%.2f", x.WritesPerMsg)
		}
		server := "—"
		if x.ServerCPU > 0 {
			server = fmt.Sprintf("%.1f µs", x.ServerCPU)
		}
		allocs := "—"
		if x.AllocsPerMsg > 0 {
			allocs = fmt.Sprintf("%.0f", x.AllocsPerMsg)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s / %s / %s ms | %.1f µs | %s | %s | %s | %s | %.0f MiB | %d | %d | %s |\n",
			x.Label, thousands(x.Rate), strings.Join(rounds, " / "), ratio(x.RateRatio),
			msNum(x.P50), msNum(x.P99), msNum(x.P999), x.CPUPerMsg, ratio(x.CPURatio), server, writes, allocs, x.PeakRSSMiB, x.Lost, x.Doubled, replayed)
	}
}

func ratio(r float64) string {
	if r == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", r)
}

func msNum(d time.Duration) string {
	v := float64(d) / 1e6
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// thousands formats v rounded with commas: 12,345.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// writeCharts writes throughput.png (median msgs/s per configuration,
// with bare mochi's as a line) and latency.png (p50, p90, p99, p99.9 per
// configuration, log scale) into dir.
func writeCharts(dir string, s settings, sum []summary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, len(sum))
	for i, x := range sum {
		names[i] = x.Name
	}
	sub := fmt.Sprintf("%d publishers × %d QoS %d → 1 persistent subscriber, median of %d rounds", s.load.Publishers, s.load.Messages, s.load.QoS, s.rounds)

	// Throughput.
	p := plot.New()
	p.Title.Text = "Throughput, publish→deliver (msgs/s)\n" + sub
	p.Y.Label.Text = "msgs/s"
	p.Y.Min = 0
	vals := make(plotter.Values, len(sum))
	for i, x := range sum {
		vals[i] = x.Rate
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return err
	}
	bars.Color = color.RGBA{R: 0x3b, G: 0x75, B: 0xaf, A: 0xff}
	bars.LineStyle.Width = 0
	p.Add(bars)
	if i := slices.IndexFunc(sum, func(x summary) bool { return x.Name == "mochi" }); i >= 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: sum[i].Rate}, {X: float64(len(sum)) - 0.5, Y: sum[i].Rate}})
		if err != nil {
			return err
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = color.Gray{Y: 0x70}
		p.Add(l)
		p.Legend.Add("bare mochi", l)
		p.Legend.Top = true
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: barTops(vals), Labels: rateLabels(sum)})
	if err != nil {
		return err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].XAlign = -0.5
	}
	p.Add(labels)
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	p.Y.Max = slices.Max([]float64(vals)) * 1.15
	if err := p.Save(vg.Points(float64(80*len(sum)+140)), vg.Points(380), filepath.Join(dir, "throughput.png")); err != nil {
		return err
	}

	// Latency percentiles: a line per configuration over p50, p90, p99,
	// p99.9 (bars cannot start at 0 on a log scale).
	p = plot.New()
	p.Title.Text = "Publish→deliver latency percentiles (ms, log scale)\n" + sub
	p.Y.Label.Text = "ms"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.TickerFunc(ticks125)
	var lines []any
	for _, x := range sum {
		xy := plotter.XYs{}
		for k, d := range []time.Duration{x.P50, x.P90, x.P99, x.P999} {
			xy = append(xy, plotter.XY{X: float64(k), Y: max(float64(d)/1e6, 0.001)})
		}
		lines = append(lines, x.Name, xy)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Top = true
	p.NominalX("p50", "p90", "p99", "p99.9")
	p.X.Max = 4.4 // room on the right for the legend
	return p.Save(vg.Points(640), vg.Points(420), filepath.Join(dir, "latency.png"))
}

func barTops(v plotter.Values) plotter.XYs {
	xy := make(plotter.XYs, len(v))
	for i, y := range v {
		xy[i] = plotter.XY{X: float64(i) - 0.25, Y: y}
	}
	return xy
}

func rateLabels(sum []summary) []string {
	out := make([]string, len(sum))
	for i, x := range sum {
		out[i] = thousands(x.Rate)
		if x.RateRatio > 0 && x.Name != "mochi" {
			out[i] += fmt.Sprintf(" (%.2f×)", x.RateRatio)
		}
	}
	return out
}

// ticks125 marks a log axis at 1, 2 and 5 times the powers of ten
// between min and max, labeled (only the powers over more than three
// decades), with unlabeled ticks between.
func ticks125(min, max float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for m := 1; m < 10; m++ {
			v := float64(m) * math.Pow(10, e)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (m == 2 || m == 5) && max/min < 1000 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			out = append(out, t)
		}
	}
	return out
}
