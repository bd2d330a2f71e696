package mongodb_test

import (
	"fmt"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// Writers creating one document at once all succeed and all count (on
// MongoDB the losers of the race fail on the duplicate key and are written
// again; FerretDB v1 mostly serialises them), many existing documents are
// updated in bulk writes of a size FerretDB v1 finishes (one write of
// 230 would wait for itself forever), and every statement filters on _id
// alone.
func TestUpsertsByIDSurviveRacesAndLargeBatches(t *testing.T) {
	t.Parallel()
	db, filters := testenv.MongoDBWithFilters(t, "upsert")
	ctx := testenv.Context(t)
	c := db.Collection("docs")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		for _, id := range []string{"a", "b"} {
			wg.Go(func() {
				errs <- mongodb.UpsertByID(ctx, c, id, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a racing upsert failed: %v", err)
		}
	}
	filters.ByIDOnly(t, "UpsertByID")
	for _, id := range []string{"a", "b"} {
		var doc struct{ N int }
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil || doc.N != 8 {
			t.Fatalf("%s: n = %d (%v), want 8", id, doc.N, err)
		}
	}
	filters.Take()
	updates := map[string]bson.D{}
	for i := range 230 {
		updates[fmt.Sprintf("m%03d", i)] = bson.D{{Key: "$max", Value: bson.D{{Key: "v", Value: i}}}}
	}
	for range 2 { // the second time, every document exists
		if err := mongodb.UpsertManyByID(ctx, c, updates); err != nil {
			t.Fatal(err)
		}
	}
	filters.ByIDOnly(t, "UpsertManyByID")
	if n, err := c.CountDocuments(ctx, bson.D{}); err != nil || n != 232 {
		t.Fatalf("%d documents (%v), want 232", n, err)
	}
}
