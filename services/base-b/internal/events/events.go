// Package events applies Base A's debt.summary.changed events to profiles
// through pkg/consumer: idempotently (dedupe on message_id, and a summary
// never replaces a newer version), holding messages unacknowledged while
// the store is down.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"google.golang.org/protobuf/proto"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
)

// Store is what applying a summary needs (profiles.Service: the store
// write, then the cache invalidation on every replica).
type Store interface {
	ApplyDebtSummary(ctx context.Context, cpf string, d domain.DebtSummary) error
}

// New returns Base B's idempotent consumer of debt summaries: deduped on
// message_id in dedupe, every store call through br (a summary never
// replaces a newer version, so applying one twice is harmless), retried
// while the store or its breaker is away. o sets the rest (retention,
// metrics, logger).
func New(st Store, dedupe consumer.Dedupe, br *breaker.Breaker, o consumer.Options) (*consumer.Consumer, error) {
	o.Dedupe, o.Guard, o.Retryable = dedupe, br.Run, retryable
	o.Apply = func(ctx context.Context, d amqp.Delivery) error {
		if d.Type != eventtypes.DebtSummaryChanged {
			return amqp.Permanent(fmt.Errorf("unexpected message type %q", d.Type))
		}
		cp, sum, err := Decode(d.Body)
		if err != nil {
			return amqp.Permanent(err)
		}
		return st.ApplyDebtSummary(ctx, cp, sum)
	}
	return consumer.New(o)
}

func retryable(err error) bool {
	return errors.Is(err, domain.ErrUnavailable) || errors.Is(err, breaker.ErrOpen)
}

// Queue is Base B's durable queue (name configurable for tests).
func Queue(name string) amqp.Queue {
	return amqp.Queue{Name: name, DeliveryLimit: 50, Bindings: []string{eventtypes.DebtSummaryChanged}}
}

// Decode validates a debt.summary.changed payload.
func Decode(body []byte) (string, domain.DebtSummary, error) {
	var ev eventsv1.DebtSummaryChanged
	if err := proto.Unmarshal(body, &ev); err != nil {
		return "", domain.DebtSummary{}, fmt.Errorf("decode: %w", err)
	}
	c, err := cpf.Parse(ev.GetCpf())
	if err != nil {
		return "", domain.DebtSummary{}, fmt.Errorf("cpf: %w", err)
	}
	if ev.GetOpenCount() < 0 || ev.GetOpenAmountCents() < 0 || ev.GetVersion() <= 0 || ev.GetAsOf() == nil {
		return "", domain.DebtSummary{}, errors.New("summary needs non-negative amounts, a positive version and as_of")
	}
	return c.String(), domain.DebtSummary{OpenCount: ev.GetOpenCount(), OpenAmountCents: ev.GetOpenAmountCents(),
		Currency: ev.GetCurrency(), AsOf: ev.GetAsOf().AsTime().UTC(), Version: ev.GetVersion()}, nil
}

// BroadcastQueue is this replica's transient queue for the other
// replicas' cache invalidations (named after the shared queue).
func BroadcastQueue(shared, replicaID string) amqp.Queue {
	return amqp.Queue{Name: shared + ".broadcast." + replicaID, Transient: true, Bindings: []string{eventtypes.ProfileCacheInvalidated}}
}

// Invalidator is what a broadcast acts on.
type Invalidator interface {
	Invalidate(ctx context.Context, cpf string)
}

// HandleInvalidation returns the broadcast queue's handler: each CPF
// another replica changed is invalidated here (this replica's own
// broadcasts are ignored: it invalidated them when it wrote).
func HandleInvalidation(p Invalidator, replicaID string) amqp.Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		if d.Type != eventtypes.ProfileCacheInvalidated {
			return amqp.Permanent(fmt.Errorf("unexpected message type %q", d.Type))
		}
		var ev eventsv1.ProfileCacheInvalidated
		if err := proto.Unmarshal(d.Body, &ev); err != nil {
			return amqp.Permanent(fmt.Errorf("decode: %w", err))
		}
		if ev.GetOriginReplica() == replicaID {
			return nil
		}
		for _, c := range ev.GetCpfs() {
			p.Invalidate(ctx, c)
		}
		return nil
	}
}

// Broadcaster tells the other replicas which CPFs changed.
type Broadcaster struct {
	Publisher *amqp.Publisher
	ReplicaID string
	Logger    *slog.Logger
}

// ProfilesChanged publishes one invalidation for cpfs. A failure is
// logged, not returned: the write itself succeeded; the other replicas'
// entries expire after the cache TTL, and a replica that lost its
// broadcast subscription drops its whole cache when it resubscribes.
func (b *Broadcaster) ProfilesChanged(ctx context.Context, cpfs []string) {
	body, _ := proto.Marshal(&eventsv1.ProfileCacheInvalidated{Cpfs: cpfs, OriginReplica: b.ReplicaID})
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := b.Publisher.Publish(pctx, amqp.Message{ID: uuid.NewString(), Type: eventtypes.ProfileCacheInvalidated, Body: body})
	if err != nil && b.Logger != nil {
		b.Logger.WarnContext(ctx, "cache invalidation broadcast failed", "count", len(cpfs), "err", err)
	}
}
