// Package events applies Base A's debt.summary.changed events to profiles
// through pkg/consumer: idempotently (dedupe on message_id, and a summary
// never replaces a newer version), holding messages unacknowledged while
// the store is down.
package events

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
)

// Store is what applying a summary needs.
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
