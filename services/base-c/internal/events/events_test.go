package events_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-c/internal/activity"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
	"github.com/strata-bureau/strata/services/base-c/internal/events"
	"github.com/strata-bureau/strata/services/base-c/internal/store"
)

// A message delivered twice (same message_id) changes the store once.
func TestDuplicateMessageIsAppliedOnce(t *testing.T) {
	t.Parallel()
	_, db := testenv.MongoDB(t)
	ctx := testenv.Context(t)
	st := store.New(db)
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	acts, err := activity.New(st, breaker.Standalone(breaker.Config{Name: "t"}), activity.Options{}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	c := &events.Consumer{Activity: acts, Dedupe: st, Logger: logging.Discard(), OnDuplicate: func() { dups++ }}
	// No movement_id: the message ID identifies the movement.
	body, _ := proto.Marshal(&eventsv1.FinancialMovementRecorded{Cpf: "52998224725", AmountCents: 990, Currency: "BRL",
		Direction: "debit", Description: "tarifa", OccurredAt: timestamppb.Now()})
	d := amqp.Delivery{ID: "msg-1", Type: eventtypes.FinancialMovementRecorded, Body: body}
	for range 3 {
		if err := c.HandleData(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := st.ListMovements(ctx, domain.MovementFilter{CPF: "52998224725", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || dups != 2 {
		t.Fatalf("movements=%d duplicates dropped=%d; want 1 and 2", len(ms), dups)
	}
	// Out-of-order purchases: the newest wins whatever the arrival order.
	newer, older := time.Now().UTC().Truncate(time.Millisecond), time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	for i, at := range []time.Time{newer, older} {
		b, _ := proto.Marshal(&eventsv1.CardPurchaseRecorded{Cpf: "52998224725", AmountCents: int64(100 + i), Currency: "BRL",
			Merchant: "m", Installments: 1, OccurredAt: timestamppb.New(at)})
		if err := c.HandleData(ctx, amqp.Delivery{ID: "p" + string(rune('0'+i)), Type: eventtypes.CardPurchaseRecorded, Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := st.GetActivity(ctx, "52998224725", 10)
	if err != nil {
		t.Fatal(err)
	}
	if a.LastPurchase == nil || a.LastPurchase.AmountCents != 100 {
		t.Fatalf("an older purchase replaced a newer one: %+v", a.LastPurchase)
	}
}

func TestInvalidEventsArePermanentFailures(t *testing.T) {
	t.Parallel()
	c := &events.Consumer{Dedupe: noDedupe{}, Logger: logging.Discard()}
	for _, d := range []amqp.Delivery{
		{ID: "1", Type: eventtypes.CardPurchaseRecorded, Body: []byte{0xff}},
		{ID: "2", Type: "unknown.type", Body: nil},
		{ID: "", Type: eventtypes.CPFQueried},
	} {
		if err := c.HandleData(context.Background(), d); !amqp.IsPermanent(err) {
			t.Errorf("%+v: want a permanent error, got %v", d, err)
		}
	}
}

type noDedupe struct{}

func (noDedupe) Seen(context.Context, string) (bool, error)             { return false, nil }
func (noDedupe) MarkProcessed(context.Context, string, time.Time) error { return nil }

// Every AMQP payload is outside input: decoding never panics, and whatever
// passes validation has a valid CPF.
func FuzzDecodeEvents(f *testing.F) {
	ok, _ := proto.Marshal(&eventsv1.FinancialMovementRecorded{Cpf: "52998224725", AmountCents: 1, Currency: "BRL", Direction: "credit", OccurredAt: timestamppb.Now()})
	f.Add(ok)
	f.Add([]byte{0x0a, 0x03, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m eventsv1.FinancialMovementRecorded
		if proto.Unmarshal(b, &m) == nil {
			if mv, err := events.DecodeMovement(&m, "id"); err == nil && len(mv.CPF) != 11 {
				t.Fatalf("bad CPF passed: %q", mv.CPF)
			}
		}
		var p eventsv1.CardPurchaseRecorded
		if proto.Unmarshal(b, &p) == nil {
			_, _, _ = events.DecodePurchase(&p)
		}
		var q eventsv1.CpfQueried
		if proto.Unmarshal(b, &q) == nil {
			_, _, _ = events.DecodeQueried(&q)
		}
	})
}
