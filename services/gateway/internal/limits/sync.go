package limits

import (
	"context"
	"log/slog"
	"time"
)

// RunSync shares daily-quota counts with the other replicas through store
// every interval until ctx ends, then once more (within 2 s) so counts
// taken since the last sync are not lost. While the store fails, counts
// stay local; the first failure of a run of them is logged.
func (l *Limiter) RunSync(ctx context.Context, store UsageStore, every time.Duration, logger *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = l.Sync(sctx, store)
			return nil
		case <-t.C:
			err := l.Sync(ctx, store)
			if err != nil && !failing && ctx.Err() == nil {
				logger.Warn("cannot share quota usage; counting locally until the database returns", "err", err)
			}
			failing = err != nil
		}
	}
}
