package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/pkg/outbox"
)

// RelayOutbox publishes queued events (see pkg/outbox), through the
// database breaker.
func (s *Store) RelayOutbox(ctx context.Context, publish func(context.Context, outbox.Message) error) (int, error) {
	return outbox.Relay(ctx, func(ctx context.Context, fn func(pgx.Tx) error) error {
		return s.run(func() error { return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, fn) })
	}, 100, publish)
}
