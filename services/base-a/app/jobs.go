package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/outbox"
	"github.com/strata-bureau/strata/pkg/platform"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// auditJobs are Base A's background loops over its store: chaining the
// audit log, purging entries past retention, relaying the outbox. Each is
// a Run method that returns when ctx ends; failures are logged and tried
// again at the next tick.
type auditJobs struct {
	Store     *store.Store
	Chain     store.ChainOptions
	Config    *Config
	Publisher *amqp.Publisher
	Logger    *slog.Logger
}

// RunChainer links committed entries into the chain and tree and signs
// checkpoints, every CHAIN_INTERVAL.
func (j *auditJobs) RunChainer(ctx context.Context) error {
	return platform.Every(ctx, j.Config.ChainInterval, func(ctx context.Context) {
		if _, err := j.Store.ChainPending(ctx, j.Chain); err != nil && ctx.Err() == nil {
			j.Logger.Warn("audit chaining failed; will retry", "err", err)
		}
	})
}

// RunPurger purges entries past AUDIT_RETENTION, every AUDIT_PURGE_INTERVAL.
func (j *auditJobs) RunPurger(ctx context.Context) error {
	return platform.Every(ctx, j.Config.AuditPurgeInterval, func(ctx context.Context) {
		n, err := j.Store.PurgeAudit(ctx, j.Chain, j.Config.AuditRetention)
		switch {
		case err != nil && ctx.Err() == nil:
			j.Logger.Warn("audit retention purge failed; will retry", "err", err)
		case n > 0:
			j.Logger.Info("audit entries past retention purged", "entries", n, "retention", j.Config.AuditRetention.String())
		}
	})
}

// RunRelay publishes the outbox (debt summaries, signed checkpoints) every
// 200 ms; while the broker is away rows wait.
func (j *auditJobs) RunRelay(ctx context.Context) error {
	return platform.Every(ctx, 200*time.Millisecond, func(ctx context.Context) {
		_, err := j.Store.RelayOutbox(ctx, func(ctx context.Context, m outbox.Message) error {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return j.Publisher.Publish(pctx, amqp.Message{ID: m.MessageID, Type: m.Type, Body: m.Body, Traceparent: m.Traceparent})
		})
		if err != nil && ctx.Err() == nil {
			j.Logger.Debug("outbox relay paused", "err", err)
		}
	})
}
