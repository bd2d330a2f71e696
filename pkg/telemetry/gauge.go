package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

// ObserveGauge exports value, read at each collection, as the gauge name
// (how many of something there are now: cache entries, checks running).
func ObserveGauge(m metric.Meter, name, description string, value func() int) error {
	_, err := m.Int64ObservableGauge(name, metric.WithDescription(description),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(value()))
			return nil
		}))
	return err
}
