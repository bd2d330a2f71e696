package telemetry_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/strata-bureau/strata/pkg/telemetry"
)

// The gauge reports the value as it is at each collection.
func TestObserveGaugeReadsTheValueAtEachCollection(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	m := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("t")
	n := 3
	if err := telemetry.ObserveGauge(m, "t_things", "things now", func() int { return n }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int64{3, 7} {
		n = int(want)
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		g, ok := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Gauge[int64])
		if !ok || rm.ScopeMetrics[0].Metrics[0].Name != "t_things" || len(g.DataPoints) != 1 || g.DataPoints[0].Value != want {
			t.Fatalf("collected %+v, want t_things = %d", rm.ScopeMetrics, want)
		}
	}
}
