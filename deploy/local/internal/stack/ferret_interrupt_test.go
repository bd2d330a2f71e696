package stack

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestBulkUpdatesWorkAfterCancelledUpdates: update commands cancelled in
// the middle (the client gives up, FerretDB's context ends and the SQLite
// driver interrupts the connection) must not leave a pooled connection
// that fails every later statement with SQLITE_INTERRUPT. A 30-minute
// soak hit exactly that: after one failed update, every update command of
// more than one statement failed with "interrupted (9)".
func TestBulkUpdatesWorkAfterCancelledUpdates(t *testing.T) {
	ctx := context.Background()
	client := startFerret(ctx, t)
	coll := client.Database("interrupt").Collection("last_queries")
	docs := make([]any, 500)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("cpf-%03d", i)}, {Key: "n", Value: 0}}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	bulk := func(ctx context.Context, n int) error {
		models := make([]mongo.WriteModel, 0, n)
		for range n {
			id := fmt.Sprintf("cpf-%03d", rand.IntN(600)) // some new: upserts
			models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).
				SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "n", Value: time.Now().UnixNano()}}}}).SetUpsert(true))
		}
		_, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		return err
	}
	// Cancelled updates: timeouts short enough to end many commands midway.
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				c, cancel := context.WithTimeout(ctx, time.Duration(1+rand.IntN(20))*time.Millisecond)
				_ = bulk(c, 50)
				cancel()
			}
		}()
	}
	wg.Wait()
	// FerretDB finishes a command whose client left; let the backlog drain.
	time.Sleep(3 * time.Second)
	for i := range 30 {
		c, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := bulk(c, 10)
		cancel()
		if err != nil {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("bulk update %d after cancelled ones: %v", i, err)
		}
	}
}
