// Package events applies Base A's debt.summary.changed events to profiles:
// idempotently (dedupe on message_id, and a summary never replaces a newer
// version), holding messages unacknowledged while the store is down.
package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
)

// Store is what the consumer needs.
type Store interface {
	Seen(ctx context.Context, id string) (bool, error)
	MarkProcessed(ctx context.Context, id string) error
	ApplyDebtSummary(ctx context.Context, cpf string, d domain.DebtSummary) error
}

// Consumer applies debt summaries.
type Consumer struct {
	Store   Store
	Breaker *breaker.Breaker
	// OnDuplicate is called for each message dropped as already applied.
	OnDuplicate func()
	// OnApplied is called for each message applied.
	OnApplied func()
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

// Handle applies one delivery.
func (c *Consumer) Handle(ctx context.Context, d amqp.Delivery) error {
	if d.ID == "" || d.Type != eventtypes.DebtSummaryChanged {
		return amqp.Permanent(fmt.Errorf("unexpected message (id %q, type %q)", d.ID, d.Type))
	}
	cp, sum, err := Decode(d.Body)
	if err != nil {
		return amqp.Permanent(err)
	}
	var seen bool
	if err := c.retry(ctx, func() (e error) { seen, e = c.Store.Seen(ctx, d.ID); return e }); err != nil {
		return err
	}
	if seen {
		if c.OnDuplicate != nil {
			c.OnDuplicate()
		}
		return nil
	}
	if err := c.retry(ctx, func() error { return c.Store.ApplyDebtSummary(ctx, cp, sum) }); err != nil {
		return err
	}
	if err := c.retry(ctx, func() error { return c.Store.MarkProcessed(ctx, d.ID) }); err != nil {
		return err
	}
	if c.OnApplied != nil {
		c.OnApplied()
	}
	return nil
}

func (c *Consumer) retry(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := c.Breaker.Run(fn)
		if err == nil || !(errors.Is(err, domain.ErrUnavailable) || errors.Is(err, breaker.ErrOpen)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
