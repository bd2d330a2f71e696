package mongodb_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// indexed records that its indexes were asked for.
type indexed struct{ calls int }

func (i *indexed) EnsureIndexes(context.Context) error { i.calls++; return nil }

// A service's database comes with the dedupe store's index and its own
// stores' indexes; after Close it no longer answers.
func TestOpenServiceEnsuresEveryIndexAndCloses(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	name := testenv.UniqueName(t, "svc")
	s, err := mongodb.OpenService(ctx, testenv.MongoURI(t), name, "strata-test", noop.NewMeterProvider().Meter("t"))
	if err != nil {
		t.Fatal(err)
	}
	st := &indexed{}
	if err := s.EnsureIndexes(ctx, st); err != nil {
		t.Fatal(err)
	}
	if st.calls != 1 {
		t.Fatalf("the store's EnsureIndexes ran %d times", st.calls)
	}
	specs, err := s.DB.Collection("processed_messages").Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range specs {
		names = append(names, sp.Name)
	}
	if !slices.Contains(names, "at") {
		t.Fatalf("processed_messages indexes: %v, want at among them", names)
	}
	if err := s.Dedupe.Mark(ctx, "m1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if err := s.DB.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err == nil {
		t.Fatal("ping answered after Close")
	}
}
