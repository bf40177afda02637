package topic_test

import (
	"strconv"
	"testing"

	"github.com/mqttpersist/mqttpersist/topic"
)

// benchIndex builds an index of 100,000 filters over "site/<n>/device/<m>/temp": for 1,000 sites, 90 exact device
// filters, 5 "site/<n>/device/+/<x>" filters, 4 "site/<n>/device/<m>/#" filters and 1 "site/<n>/#" filter, plus a few
// cross-site filters.
func benchIndex(b *testing.B) *topic.Index[int] {
	b.Helper()
	ix := topic.NewIndex[int]()
	add := func(f string) {
		if err := ix.Add(f, ix.Len()); err != nil {
			b.Fatal(err)
		}
	}
	metrics := []string{"temp", "hum", "co2", "volt", "rssi"}
	for s := 0; s < 1000; s++ {
		site := "site/" + strconv.Itoa(s)
		for m := 0; m < 90; m++ {
			add(site + "/device/" + strconv.Itoa(m) + "/temp")
		}
		for _, x := range metrics {
			add(site + "/device/+/" + x)
		}
		for m := 0; m < 4; m++ {
			add(site + "/device/" + strconv.Itoa(m) + "/#")
		}
		add(site + "/#")
	}
	for _, f := range []string{"#", "site/+/device/+/temp", "$share/g/site/+/device/7/#", "+/+/+/+/+"} {
		add(f)
	}
	if ix.Len() != 100_004 {
		b.Fatalf("index holds %d filters, want 100004", ix.Len())
	}
	return ix
}

func BenchmarkIndexMatch(b *testing.B) {
	ix := benchIndex(b)
	name := "site/512/device/3/temp"
	// "#", "site/+/device/+/temp", "+/+/+/+/+", the site's "#", "+/temp", "3/#" and the exact filter.
	if got := len(ix.Match(name)); got != 7 {
		b.Fatalf("Match(%q) found %d filters, want 7", name, got)
	}
	b.ReportAllocs()
	for b.Loop() {
		ix.Match(name)
	}
}

func BenchmarkIndexEach(b *testing.B) {
	ix := benchIndex(b)
	name := "site/512/device/3/temp"
	n := 0
	fn := func(string, int) bool { n++; return true }
	b.ReportAllocs()
	for b.Loop() {
		ix.Each(name, fn)
	}
	if n == 0 {
		b.Fatal("Each found nothing")
	}
}

func BenchmarkIndexMatchParallel(b *testing.B) {
	ix := benchIndex(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ix.Match("site/512/device/3/temp")
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	cases := []struct{ label, filter, name string }{
		{"exact", "site/512/device/3/temp", "site/512/device/3/temp"},
		{"plus", "site/+/device/+/temp", "site/512/device/3/temp"},
		{"hash", "site/512/#", "site/512/device/3/temp"},
		{"miss", "site/511/device/+/temp", "site/512/device/3/temp"},
		{"shared", "$share/g/site/+/device/#", "site/512/device/3/temp"},
	}
	for _, c := range cases {
		b.Run(c.label, func(b *testing.B) {
			want := c.label != "miss"
			b.ReportAllocs()
			for b.Loop() {
				if topic.Match(c.filter, c.name) != want {
					b.Fatal("wrong result")
				}
			}
		})
	}
}

func BenchmarkValidateFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if topic.ValidateFilter("site/+/device/+/temp/#") != nil {
			b.Fatal("valid filter rejected")
		}
	}
}
