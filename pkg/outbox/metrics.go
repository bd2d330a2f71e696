package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/metric"
)

// Querier runs one query (a pool).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ObserveBacklog exports the outbox's backlog at every scrape:
// strata_outbox_messages (rows waiting for the broker) and
// strata_outbox_oldest_age_seconds (how long the oldest has waited; 0 when
// empty). A scrape runs one count over the table, which the relay keeps
// near empty; it gives up after a second so a slow database never stalls
// /metrics.
func ObserveBacklog(meter metric.Meter, db Querier) error {
	msgs, err := meter.Int64ObservableGauge("strata_outbox_messages",
		metric.WithDescription("Events waiting in the outbox for the broker."))
	if err != nil {
		return fmt.Errorf("outbox: gauge: %w", err)
	}
	age, err := meter.Float64ObservableGauge("strata_outbox_oldest_age_seconds",
		metric.WithDescription("Age of the oldest event waiting in the outbox (0 when empty)."))
	if err != nil {
		return fmt.Errorf("outbox: gauge: %w", err)
	}
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var n int64
		var oldest float64
		if err := db.QueryRow(ctx, `SELECT count(*), coalesce(date_part('epoch', now() - min(created_at)), 0)::float8
			FROM outbox WHERE published_at IS NULL`).Scan(&n, &oldest); err != nil {
			return nil // no figure this scrape rather than a failed /metrics
		}
		o.ObserveInt64(msgs, n)
		o.ObserveFloat64(age, oldest)
		return nil
	}, msgs, age)
	if err != nil {
		return fmt.Errorf("outbox: callback: %w", err)
	}
	return nil
}
