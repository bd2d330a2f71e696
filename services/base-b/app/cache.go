package app

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/platform"
	"github.com/strata-bureau/strata/pkg/readcache"
	"github.com/strata-bureau/strata/pkg/telemetry"
	"github.com/strata-bureau/strata/services/base-b/internal/events"
	"github.com/strata-bureau/strata/services/base-b/internal/profiles"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

// newProfiles is the profile cache behind the Mongo breaker, telling the
// other replicas of this one's writes.
func newProfiles(cfg *Config, p *platform.Platform, st *store.Store, br *breaker.Breaker) (*profiles.Service, error) {
	bc := &events.Broadcaster{Publisher: p.Publisher(0), ReplicaID: cfg.ReplicaID, Logger: p.Logger}
	profs, err := profiles.New(st, br, profiles.Options{CacheSize: cfg.CacheSize, CacheTTL: cfg.CacheTTL, Broadcast: bc.ProfilesChanged})
	if err != nil {
		return nil, err
	}
	return profs, observeCache(p.Tel.Meter("base-b"), profs)
}

// consumers are Base B's AMQP consumers: the debt summaries' queue the
// replicas share, and this replica's broadcast queue.
type consumers struct {
	p         *platform.Platform
	summaries *consumer.Consumer
	data      amqp.Queue
	opts      amqp.ConsumerOptions
	// cast applies the other replicas' invalidations; every subscription
	// drops the profile cache.
	cast *platform.Broadcast
}

// newConsumers declares the shared queue before serving, so no summary
// published after this replica reports ready can be unroutable.
func newConsumers(ctx context.Context, cfg *Config, p *platform.Platform, profs *profiles.Service, dedupe consumer.Dedupe, br *breaker.Breaker) (*consumers, error) {
	summaries, err := events.New(profs, dedupe, br, consumer.Options{Retention: cfg.ProcessedRetention, Meter: p.Tel.Meter("base-b"), Logger: p.Logger})
	if err != nil {
		return nil, err
	}
	c := &consumers{p: p, summaries: summaries, data: events.Queue(cfg.Queue),
		opts: amqp.ConsumerOptions{Prefetch: 64, Tag: "base-b-" + cfg.ReplicaID, Propagator: p.Tel.Propagator,
			Producers: cfg.AMQPProducers, OnForeign: summaries.OnForeign}}
	cast := events.BroadcastQueue(cfg.Queue, cfg.ReplicaID)
	c.data.Exchange, cast.Exchange = cfg.Exchange, cfg.Exchange
	c.cast = p.Broadcast(cast, c.opts, events.HandleInvalidation(profs, cfg.ReplicaID), profs.InvalidateAll)
	return c, p.Declare(ctx, c.data)
}

// RunData applies debt summaries (each invalidates its CPF everywhere).
func (c *consumers) RunData(ctx context.Context) error {
	return c.p.MQ.Consume(ctx, c.data, c.opts, c.summaries.Handle)
}

// observeCache exports the profile cache's hits and misses
// (strata_baseb_cache_lookups_total by result) and its size
// (strata_baseb_cache_entries).
func observeCache(m metric.Meter, profs *profiles.Service) error {
	if err := telemetry.ObserveGauge(m, "strata_baseb_cache_entries", "CPFs in the profile cache now.", profs.CacheLen); err != nil {
		return err
	}
	return readcache.ObserveLookups(m, "strata_baseb_cache_lookups_total",
		"Profile reads answered from the in-process cache (result=hit) or loaded from the store (result=miss).", profs.CacheStats)
}
