package testenv

import (
	"slices"
	"testing"
	"time"
)

// Latency measures each operation of a benchmark and reports p50 and p99
// (in µs) and throughput beside Go's mean ns/op, so figures can be put
// next to baselines measured in the same run.
type Latency struct {
	samples []time.Duration
	start   time.Time
}

// MeasureLatency runs op b.N times, timing each call.
func MeasureLatency(b *testing.B, op func() error) {
	b.Helper()
	l := Latency{samples: make([]time.Duration, 0, b.N)}
	b.ResetTimer()
	l.start = time.Now()
	for range b.N {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		l.samples = append(l.samples, time.Since(t0))
	}
	elapsed := time.Since(l.start)
	b.StopTimer()
	l.report(b, elapsed)
}

func (l *Latency) report(b *testing.B, elapsed time.Duration) {
	if len(l.samples) == 0 {
		return
	}
	slices.Sort(l.samples)
	pct := func(p float64) float64 {
		i := int(float64(len(l.samples)-1) * p)
		return float64(l.samples[i].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(len(l.samples))/elapsed.Seconds(), "ops/s")
}
