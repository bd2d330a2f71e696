// Package events publishes cpf.queried for every successful CPF lookup
// without ever failing or slowing the partner's request: a lookup only
// puts its event on an in-memory queue. One goroutine publishes what is
// queued in batches, with every confirm of a batch outstanding at once (a
// pipelined confirm window), so the broker's round trip is paid once per
// batch, not per event. Only what the broker refuses or cannot take (an
// outage, an open breaker) goes to the gateway's PostgreSQL outbox, in one
// write per batch, and is relayed when the broker returns. When the queue
// is full, events spill to a bounded buffer written to the outbox in
// batches by the same goroutine: a request never writes to the database.
// On shutdown what is left is written to the outbox.
package events

import (
	"context"
	"log/slog"
	"sync"
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

const (
	// queueSize bounds the in-memory queue between requests and the publisher.
	queueSize = 10000
	// batchSize is the most events published with confirms outstanding at once.
	batchSize = 256
	// spillSize bounds the events waiting for the outbox while the queue is full.
	spillSize = 100000
)

// Emitter sends cpf.queried events.
type Emitter struct {
	ch     chan outbox.Message
	pub    *amqp.Publisher
	store  *store.Store
	logger *slog.Logger

	mu      sync.Mutex
	spill   []outbox.Message
	dropped int
}

// New returns an emitter; call Run.
func New(pub *amqp.Publisher, st *store.Store, logger *slog.Logger) *Emitter {
	return &Emitter{ch: make(chan outbox.Message, queueSize), pub: pub, store: st, logger: logger}
}

// Queried records a successful lookup of cpf by partner from ip on base.
// It never blocks and never touches a database.
// The event keeps ctx's trace (its traceparent), however late it is
// published.
func (e *Emitter) Queried(ctx context.Context, cpf, partner, ip, base string) {
	body, _ := proto.Marshal(&eventsv1.CpfQueried{Cpf: cpf, PartnerId: partner, ClientIp: ip, Base: base, QueriedAt: timestamppb.Now()})
	m := outbox.Message{MessageID: uuid.NewString(), Type: eventtypes.CPFQueried, Body: body, Traceparent: amqp.Traceparent(ctx)}
	select {
	case e.ch <- m:
	default:
		// Queue full: keep the event for the outbox, written in batches.
		e.mu.Lock()
		if len(e.spill) < spillSize {
			e.spill = append(e.spill, m)
		} else {
			e.dropped++
		}
		e.mu.Unlock()
	}
}

// publishBatch publishes msgs with a pipelined confirm window and writes
// whatever the broker did not confirm to the outbox in one write.
func (e *Emitter) publishBatch(ctx context.Context, msgs []outbox.Message) {
	var failed []outbox.Message
	for i, err := range e.publishAll(ctx, msgs) {
		if err != nil {
			failed = append(failed, msgs[i])
		}
	}
	e.save(ctx, failed)
}

func (e *Emitter) save(ctx context.Context, msgs []outbox.Message) {
	if len(msgs) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.store.Enqueue(sctx, msgs); err != nil {
		e.logger.Error("cpf.queried events lost: broker and outbox unavailable", "count", len(msgs), "err", err)
	}
}

// publishAll publishes msgs with a pipelined confirm window (the outbox
// relay's publisher).
func (e *Emitter) publishAll(ctx context.Context, msgs []outbox.Message) []error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	am := make([]amqp.Message, len(msgs))
	for i, m := range msgs {
		am[i] = amqp.Message{ID: m.MessageID, Type: m.Type, Body: m.Body, Traceparent: m.Traceparent}
	}
	return e.pub.PublishBatch(pctx, am)
}

// flushSpill writes the events that overflowed the queue to the outbox.
func (e *Emitter) flushSpill(ctx context.Context) {
	e.mu.Lock()
	spill, dropped := e.spill, e.dropped
	e.spill, e.dropped = nil, 0
	e.mu.Unlock()
	if dropped > 0 {
		e.logger.Error("cpf.queried events lost: queue and overflow full", "count", dropped)
	}
	for len(spill) > 0 {
		n := min(len(spill), 5000)
		e.save(ctx, spill[:n])
		spill = spill[n:]
	}
}

// Run publishes until ctx ends, then saves what is left to the outbox.
func (e *Emitter) Run(ctx context.Context) {
	relay := time.NewTicker(500 * time.Millisecond)
	defer relay.Stop()
	spill := time.NewTicker(100 * time.Millisecond)
	defer spill.Stop()
	batch := make([]outbox.Message, 0, batchSize)
	for {
		select {
		case <-ctx.Done():
			e.drain()
			return
		case m := <-e.ch:
			batch = append(batch[:0], m)
		more:
			for len(batch) < batchSize {
				select {
				case m := <-e.ch:
					batch = append(batch, m)
				default:
					break more
				}
			}
			e.publishBatch(ctx, batch)
		case <-spill.C:
			e.flushSpill(ctx)
		case <-relay.C:
			if _, err := e.store.Relay(ctx, e.publishAll); err != nil && ctx.Err() == nil {
				e.logger.Debug("outbox relay paused", "err", err)
			}
		}
	}
}

func (e *Emitter) drain() {
	e.flushSpill(context.Background())
	var left []outbox.Message
	for {
		select {
		case m := <-e.ch:
			left = append(left, m)
		default:
			e.save(context.Background(), left)
			return
		}
	}
}
