// Package events publishes cpf.queried for every successful CPF lookup
// without ever failing or slowing the partner's request: events go through
// an in-memory queue to the broker with confirms; when the broker is down
// (or its breaker open) they are written to the gateway's PostgreSQL
// outbox and relayed when it returns. On shutdown the queue is drained
// into the outbox.
package events

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/outbox"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Emitter sends cpf.queried events.
type Emitter struct {
	ch     chan outbox.Message
	pub    *amqp.Publisher
	store  *store.Store
	logger *slog.Logger
}

// New returns an emitter; call Run.
func New(pub *amqp.Publisher, st *store.Store, logger *slog.Logger) *Emitter {
	return &Emitter{ch: make(chan outbox.Message, 10000), pub: pub, store: st, logger: logger}
}

// Queried records a successful lookup of cpf by partner from ip on base.
func (e *Emitter) Queried(ctx context.Context, cpf, partner, ip, base string) {
	body, _ := proto.Marshal(&eventsv1.CpfQueried{Cpf: cpf, PartnerId: partner, ClientIp: ip, Base: base, QueriedAt: timestamppb.Now()})
	m := outbox.Message{MessageID: uuid.NewString(), Type: eventtypes.CPFQueried, Body: body}
	select {
	case e.ch <- m:
	default:
		// Queue full: keep the event durably instead of dropping it.
		if err := e.store.Enqueue(context.WithoutCancel(ctx), []outbox.Message{m}); err != nil {
			e.logger.ErrorContext(ctx, "cpf.queried event lost: queue full and outbox unavailable", "err", err)
		}
	}
}

func (e *Emitter) publish(ctx context.Context, m outbox.Message) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return e.pub.Publish(pctx, amqp.Message{ID: m.MessageID, Type: m.Type, Body: m.Body})
}

// Run publishes until ctx ends, then saves what is left to the outbox.
func (e *Emitter) Run(ctx context.Context) {
	relay := time.NewTicker(500 * time.Millisecond)
	defer relay.Stop()
	for {
		select {
		case <-ctx.Done():
			e.drain()
			return
		case m := <-e.ch:
			if err := e.publish(ctx, m); err != nil {
				if err := e.store.Enqueue(context.WithoutCancel(ctx), []outbox.Message{m}); err != nil {
					e.logger.Error("cpf.queried event lost: broker and outbox unavailable", "err", err)
				}
			}
		case <-relay.C:
			if _, err := e.store.Relay(ctx, e.publish); err != nil && ctx.Err() == nil {
				e.logger.Debug("outbox relay paused", "err", err)
			}
		}
	}
}

func (e *Emitter) drain() {
	var left []outbox.Message
	for {
		select {
		case m := <-e.ch:
			left = append(left, m)
		default:
			if len(left) > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := e.store.Enqueue(ctx, left); err != nil {
					e.logger.Error("cpf.queried events lost at shutdown", "count", len(left), "err", err)
				}
			}
			return
		}
	}
}
