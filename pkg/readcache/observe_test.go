package readcache_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/strata-bureau/strata/pkg/readcache"
)

// The lookups counter reports the cache's hits and misses by result.
func TestObserveLookupsCountsHitsAndMisses(t *testing.T) {
	t.Parallel()
	src := &source{data: map[string]string{"a": "1"}}
	c := newCache(t, src, readcache.Options[string]{})
	reader := sdkmetric.NewManualReader()
	m := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("t")
	if err := readcache.ObserveLookups(m, "t_lookups_total", "lookups", c.Stats); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "a", "a", "b"} {
		if _, _, _, err := c.Get(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			sum, ok := md.Data.(metricdata.Sum[int64])
			if md.Name != "t_lookups_total" || !ok || !sum.IsMonotonic {
				t.Fatalf("metric %s: %T", md.Name, md.Data)
			}
			for _, dp := range sum.DataPoints {
				r, _ := dp.Attributes.Value("result")
				got[r.AsString()] = dp.Value
			}
		}
	}
	if got["hit"] != 2 || got["miss"] != 2 {
		t.Fatalf("lookups by result: %v, want hit 2 and miss 2", got)
	}
}
