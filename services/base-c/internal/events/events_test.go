package events_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/mongodb"
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
	c, err := events.New(acts, nil, "r1", mongodb.NewDedupe(db, "processed_messages"), consumer.Options{})
	if err != nil {
		t.Fatal(err)
	}
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
	if len(ms) != 1 {
		t.Fatalf("movements=%d; want 1", len(ms))
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
	c := noDedupeConsumer(t, nil)
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

func (noDedupe) Seen(context.Context, string) (bool, error)      { return false, nil }
func (noDedupe) Mark(context.Context, string, time.Time) error   { return nil }
func (noDedupe) Prune(context.Context, time.Time) (int64, error) { return 0, nil }

func noDedupeConsumer(t *testing.T, acts *activity.Service) *events.Consumer {
	t.Helper()
	c, err := events.New(acts, nil, "r1", noDedupe{}, consumer.Options{Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

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

// A batch of cpf.queried events, out of order and with one invalid, writes
// the newest query per CPF, dead-letters only the invalid one and patches
// the other replicas in one broadcast.
func TestQueriedBatchCoalescesNewestPerCPF(t *testing.T) {
	t.Parallel()
	_, db := testenv.MongoDB(t)
	ctx := testenv.Context(t)
	st := store.New(db)
	var broadcasts []map[string]domain.LastQuery
	acts, err := activity.New(st, breaker.Standalone(breaker.Config{Name: "t"}), activity.Options{
		BroadcastQueries: func(_ context.Context, qs map[string]domain.LastQuery) { broadcasts = append(broadcasts, qs) },
	}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	c := noDedupeConsumer(t, acts)
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	q := func(cpf, partner string, at time.Time) amqp.Delivery {
		b, _ := proto.Marshal(&eventsv1.CpfQueried{Cpf: cpf, PartnerId: partner, Base: "base-c", QueriedAt: timestamppb.New(at)})
		return amqp.Delivery{ID: partner, Type: eventtypes.CPFQueried, Body: b}
	}
	ds := []amqp.Delivery{
		q("52998224725", "second", t0.Add(time.Second)),
		q("52998224725", "first", t0),
		q("12345678900", "invalid-cpf", t0),
		q("11144477735", "other", t0),
		q("52998224725", "third", t0.Add(2*time.Second)),
		q("52998224725", "older", t0.Add(-time.Second)),
	}
	errs := c.HandleDataBatch(ctx, ds)
	for i, err := range errs {
		if (i == 2) != amqp.IsPermanent(err) || (i != 2 && err != nil) {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	for cpf, want := range map[string]string{"52998224725": "third", "11144477735": "other"} {
		a, _, err := acts.Get(ctx, cpf)
		if err != nil || a.LastQuery == nil || a.LastQuery.PartnerID != want {
			t.Fatalf("%s: %+v %v, want %s", cpf, a, err, want)
		}
	}
	if len(broadcasts) != 1 || len(broadcasts[0]) != 2 {
		t.Fatalf("broadcasts: %v", broadcasts)
	}
	// A redelivered older batch changes nothing.
	if errs := c.HandleDataBatch(ctx, ds[:2]); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	a, err := st.GetActivity(ctx, "52998224725", 10)
	if err != nil || a.LastQuery.PartnerID != "third" {
		t.Fatalf("an older query overwrote a newer one: %+v %v", a, err)
	}
}
