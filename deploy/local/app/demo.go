package app

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
)

// seedEvents publishes the demo data that reaches the bases through AMQP,
// the way internal producers feed them. Message and movement IDs are fixed,
// so a second run changes nothing (the consumers dedupe).
func seedEvents(ctx context.Context, amqpURL, caFile string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, err := amqp.Dial(ctx, amqp.Config{URL: amqpURL, CAFile: caFile, Name: "strata-local demo seed"})
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
	pub := amqp.NewPublisher(client, amqp.PublisherOptions{})
	day := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	msgs := []struct {
		id, typ string
		m       proto.Message
	}{
		{"demo-mv-1", eventtypes.FinancialMovementRecorded, &eventsv1.FinancialMovementRecorded{Cpf: DemoCPF, MovementId: "demo-mv-1",
			AmountCents: 850000, Currency: "BRL", Direction: "credit", Description: "salário", OccurredAt: timestamppb.New(day)}},
		{"demo-mv-2", eventtypes.FinancialMovementRecorded, &eventsv1.FinancialMovementRecorded{Cpf: DemoCPF, MovementId: "demo-mv-2",
			AmountCents: 189990, Currency: "BRL", Direction: "debit", Description: "aluguel", OccurredAt: timestamppb.New(day.Add(72 * time.Hour))}},
		{"demo-mv-3", eventtypes.FinancialMovementRecorded, &eventsv1.FinancialMovementRecorded{Cpf: DemoCPF, MovementId: "demo-mv-3",
			AmountCents: 12050, Currency: "BRL", Direction: "debit", Description: "pix mercado", OccurredAt: timestamppb.New(day.Add(120 * time.Hour))}},
		{"demo-purchase-1", eventtypes.CardPurchaseRecorded, &eventsv1.CardPurchaseRecorded{Cpf: DemoCPF, AmountCents: 349900,
			Currency: "BRL", Merchant: "Eletro Brasil", Installments: 10, OccurredAt: timestamppb.New(day.Add(130 * time.Hour))}},
	}
	for _, m := range msgs {
		body, err := proto.Marshal(m.m)
		if err != nil {
			return err
		}
		if err := pub.Publish(ctx, amqp.Message{ID: m.id, Type: m.typ, Body: body}); err != nil {
			return fmt.Errorf("seed %s: %w", m.id, err)
		}
	}
	return nil
}
