// Package consumer applies AMQP deliveries idempotently: it drops a message
// whose message_id was already applied, applies the others, retries while
// the store is away (the message stays unacknowledged rather than being
// requeued towards its delivery limit), lets poison messages go to the
// dead-letter queue, records what it applied and prunes those records, so
// the dedupe store is bounded by the redelivery window and not by uptime.
//
// It sits above pkg/amqp's delivery level: a Consumer's Handle is an
// amqp.Handler, so whatever pkg/amqp does around a handler (producer
// checks, trace context, acknowledgement) composes with it.
package consumer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/strata-bureau/strata/pkg/amqp"
)

// Dedupe records the message ids that were applied.
type Dedupe interface {
	// Seen reports whether id was applied.
	Seen(ctx context.Context, id string) (bool, error)
	// Mark records that id was applied at at (again: no error).
	Mark(ctx context.Context, id string, at time.Time) error
	// Prune forgets the ids applied before before and says how many.
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// ApplyFunc applies one delivery. It must be idempotent by itself: a crash
// between the apply and the dedupe mark applies the message again on
// redelivery. Errors wrapped by amqp.Permanent dead-letter the message.
type ApplyFunc func(ctx context.Context, d amqp.Delivery) error

// Options for New.
type Options struct {
	// Dedupe keeps applied message ids (required).
	Dedupe Dedupe
	// Apply applies a message not seen before (required).
	Apply ApplyFunc
	// Retryable says which errors of Apply mean "the store is away, try
	// again": those are retried with backoff until they pass or ctx ends.
	// Every other error is returned at once (a permanent one dead-letters
	// the message, any other requeues it). Errors of the dedupe store are
	// always retried: it cannot refuse an id. nil: nothing is retried.
	Retryable func(error) bool
	// Guard runs every store call (Seen, Apply, Mark), e.g. a circuit
	// breaker's Run; nil runs them directly.
	Guard func(func() error) error
	// Retention is how long applied ids are kept (default 7 days); it must
	// exceed the time a message can wait for redelivery.
	Retention time.Duration
	// PruneEvery is the period of Run's pruning (default 1 hour).
	PruneEvery time.Duration
	// Backoff is the first retry's wait (default 100 ms), doubled up to
	// MaxBackoff (default 5 s).
	Backoff, MaxBackoff time.Duration
	// Meter, when set, counts applied, duplicate and foreign-producer events
	// (strata_events_applied_total, strata_events_duplicates_total,
	// strata_events_foreign_producer_total).
	Meter metric.Meter
	// Logger reports pruning (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Consumer applies deliveries once each.
type Consumer struct {
	o                      Options
	applied, dups, foreign metric.Int64Counter
}

// New returns a consumer.
func New(o Options) (*Consumer, error) {
	if o.Dedupe == nil || o.Apply == nil {
		return nil, errors.New("consumer: Dedupe and Apply are required")
	}
	if o.Retryable == nil {
		o.Retryable = func(error) bool { return false }
	}
	if o.Guard == nil {
		o.Guard = func(fn func() error) error { return fn() }
	}
	o.Retention = or(o.Retention, 7*24*time.Hour)
	o.PruneEvery = or(o.PruneEvery, time.Hour)
	o.Backoff = or(o.Backoff, 100*time.Millisecond)
	o.MaxBackoff = or(o.MaxBackoff, 5*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Consumer{o: o}
	if o.Meter != nil {
		var err error
		if c.applied, err = o.Meter.Int64Counter("strata_events_applied_total",
			metric.WithDescription("Events applied to the store.")); err != nil {
			return nil, err
		}
		if c.dups, err = o.Meter.Int64Counter("strata_events_duplicates_total",
			metric.WithDescription("Events dropped because their message_id was already applied.")); err != nil {
			return nil, err
		}
		if c.foreign, err = o.Meter.Int64Counter("strata_events_foreign_producer_total",
			metric.WithDescription("Events dead-lettered because their producer (AMQP user_id) does not own their type.")); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func or(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Handle applies d unless its message_id was applied before; it is an
// amqp.Handler. A message without a message_id cannot be deduplicated and
// is dead-lettered.
func (c *Consumer) Handle(ctx context.Context, d amqp.Delivery) error {
	if d.ID == "" {
		return amqp.Permanent(errors.New("message without message_id"))
	}
	var seen bool
	if err := c.retry(ctx, always, func() (err error) { seen, err = c.o.Dedupe.Seen(ctx, d.ID); return err }); err != nil {
		return err
	}
	if seen {
		c.add(c.dups, 1)
		return nil
	}
	if err := c.Retry(ctx, func() error { return c.o.Apply(ctx, d) }); err != nil {
		return err
	}
	if err := c.retry(ctx, always, func() error { return c.o.Dedupe.Mark(ctx, d.ID, c.o.Now().UTC()) }); err != nil {
		return err
	}
	c.add(c.applied, 1)
	return nil
}

// Retry runs fn (through Guard) until it succeeds, fails with an error
// Retryable refuses, or ctx ends, waiting longer after each failure. For
// writes that need no dedupe mark (a batch of commutative updates).
func (c *Consumer) Retry(ctx context.Context, fn func() error) error {
	return c.retry(ctx, c.o.Retryable, fn)
}

func always(error) bool { return true }

func (c *Consumer) retry(ctx context.Context, retryable func(error) bool, fn func() error) error {
	backoff := c.o.Backoff
	for {
		err := c.o.Guard(fn)
		if err == nil || amqp.IsPermanent(err) || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.o.MaxBackoff)
	}
}

// Applied counts n events applied outside Handle (by a batch write).
func (c *Consumer) Applied(n int) { c.add(c.applied, n) }

// OnForeign counts an event dead-lettered because its producer does not own
// its type; it fits amqp.ConsumerOptions.OnForeign.
func (c *Consumer) OnForeign(typ, _ string) {
	if c.foreign != nil {
		c.foreign.Add(context.Background(), 1, metric.WithAttributes(attribute.String("type", typ)))
	}
}

func (c *Consumer) add(ctr metric.Int64Counter, n int) {
	if ctr != nil && n > 0 {
		ctr.Add(context.Background(), int64(n))
	}
}

// Prune forgets the ids applied more than Retention ago.
func (c *Consumer) Prune(ctx context.Context) (int64, error) {
	return c.o.Dedupe.Prune(ctx, c.o.Now().Add(-c.o.Retention))
}

// Run prunes at once (a service restarted more often than PruneEvery still
// prunes) and then every PruneEvery until ctx ends. A failed prune is
// logged and tried again at the next tick.
func (c *Consumer) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.PruneEvery)
	defer t.Stop()
	for {
		if n, err := c.Prune(ctx); err != nil && ctx.Err() == nil {
			c.o.Logger.Warn("pruning dedupe markers failed", "err", err)
		} else if n > 0 {
			c.o.Logger.Info("pruned dedupe markers", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
