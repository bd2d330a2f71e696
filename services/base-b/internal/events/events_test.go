package events_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/proto/eventtypes"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
	"github.com/strata-bureau/strata/services/base-b/internal/events"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

func TestDuplicateSummaryIsAppliedOnce(t *testing.T) {
	t.Parallel()
	_, db := testenv.MongoDB(t)
	ctx := testenv.Context(t)
	st, dedupe := store.New(db), mongodb.NewDedupe(db, "processed_messages")
	applies := 0
	counting := applyCounter{Store: st, n: &applies}
	c, err := events.New(counting, dedupe, breaker.Standalone(breaker.Config{Name: "t"}), consumer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := proto.Marshal(&eventsv1.DebtSummaryChanged{Cpf: "52998224725", OpenCount: 1, OpenAmountCents: 500, Currency: "BRL", AsOf: timestamppb.Now(), Version: 7})
	d := amqp.Delivery{ID: "same", Type: eventtypes.DebtSummaryChanged, Body: body}
	for range 3 {
		if err := c.Handle(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if applies != 1 {
		t.Fatalf("applied %d times, want once", applies)
	}
	var doc struct {
		DS struct {
			Version int64 `bson:"version"`
		} `bson:"debt_summary"`
	}
	if err := db.Collection("profiles").FindOne(ctx, bson.M{"_id": "52998224725"}).Decode(&doc); err != nil || doc.DS.Version != 7 {
		t.Fatalf("summary not applied: %+v %v", doc, err)
	}
	for _, d := range []amqp.Delivery{
		{ID: "x", Type: eventtypes.DebtSummaryChanged, Body: []byte{0xff}},
		{ID: "y", Type: eventtypes.CPFQueried, Body: body},
		{ID: "", Type: eventtypes.DebtSummaryChanged, Body: body},
	} {
		if err := c.Handle(context.Background(), d); !amqp.IsPermanent(err) {
			t.Fatalf("%+v: want a permanent error, got %v", d, err)
		}
	}
}

// applyCounter counts the summaries applied to the store.
type applyCounter struct {
	*store.Store
	n *int
}

func (a applyCounter) ApplyDebtSummary(ctx context.Context, cpf string, d domain.DebtSummary) error {
	*a.n++
	return a.Store.ApplyDebtSummary(ctx, cpf, d)
}

func FuzzDecode(f *testing.F) {
	ok, _ := proto.Marshal(&eventsv1.DebtSummaryChanged{Cpf: "52998224725", Version: 1, AsOf: timestamppb.Now()})
	f.Add(ok)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, s, err := events.Decode(b)
		if err == nil && (len(c) != 11 || s.Version <= 0 || s.OpenAmountCents < 0) {
			t.Fatalf("accepted %q %+v", c, s)
		}
	})
}
