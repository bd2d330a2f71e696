//go:build chaos

package chaos

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
)

// publishMovement plays an internal producer.
func publishMovement(w *world, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := amqp.Dial(ctx, amqp.Config{URL: w.pl.BrokerURL("strata-ingest")})
	if err != nil {
		return err
	}
	defer c.Close()
	body, _ := proto.Marshal(&eventsv1.FinancialMovementRecorded{Cpf: cpf, MovementId: id, AmountCents: 4242, Currency: "BRL",
		Direction: "debit", Description: "chaos", OccurredAt: timestamppb.Now()})
	return amqp.NewPublisher(c, amqp.PublisherOptions{}).Publish(ctx, amqp.Message{ID: id, Type: eventtypes.FinancialMovementRecorded, Body: body})
}
