package stack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestFerretFindByIDUsesIndex proves the patched FerretDB (see
// third_party/ferretdb/PATCHES.md) looks documents up by _id through its
// unique index: SQLite's query plan for a find by _id, which FerretDB's
// explain command reports for the very SQL it runs, must be a SEARCH using
// the _id index. The released v1.24.0 answers "SCAN" here (a full scan per
// find, update and delete by _id).
func TestFerretFindByIDUsesIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := StartFerret(ctx, t.TempDir(), "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	db := client.Database("plan")
	docs := make([]any, 1000)
	for i := range docs {
		docs[i] = bson.M{"_id": fmt.Sprintf("%011d", i), "v": i}
	}
	// A collection created by an insert, and one created by createIndexes
	// first (as the services' EnsureIndexes do): both get the _id index.
	for _, name := range []string{"inserted", "indexed"} {
		c := db.Collection(name)
		if name == "indexed" {
			if _, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "v", Value: 1}}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
		plan := explainFind(ctx, t, db, name, bson.D{{Key: "_id", Value: "00000000500"}})
		if !strings.Contains(plan, "SEARCH") || !strings.Contains(plan, "USING INDEX") || strings.Contains(plan, "SCAN") {
			t.Fatalf("%s: find by _id is not an index search: %s", name, plan)
		}
		// The answer is still right.
		var got bson.M
		if err := c.FindOne(ctx, bson.M{"_id": "00000000500"}).Decode(&got); err != nil || got["v"] != int32(500) {
			t.Fatalf("%s: find by _id: %v %v", name, got, err)
		}
		res, err := c.UpdateOne(ctx, bson.M{"_id": "00000000500"}, bson.M{"$set": bson.M{"v": -1}})
		if err != nil || res.ModifiedCount != 1 {
			t.Fatalf("%s: update by _id: %+v %v", name, res, err)
		}
		// A filter on another field is not pushed down by FerretDB v1: it
		// scans, which is why the services look documents up by _id only.
		if plan := explainFind(ctx, t, db, name, bson.D{{Key: "v", Value: 3}}); !strings.Contains(plan, "SCAN") {
			t.Fatalf("%s: expected a scan for a non-_id filter, got %s", name, plan)
		}
	}
}

func explainFind(ctx context.Context, t *testing.T, db *mongo.Database, coll string, filter bson.D) string {
	t.Helper()
	var out bson.M
	err := db.RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: filter}}}}).Decode(&out)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out["queryPlanner"])
}

// BenchmarkFerretFindByID measures a find by _id in a 10k-document
// collection, ids spread over the whole collection (a full scan stops at
// the match, so low ids alone would hide one).
func BenchmarkFerretFindByID(b *testing.B) {
	ctx := context.Background()
	f, err := StartFerret(ctx, b.TempDir(), "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	c := client.Database("bench").Collection("docs")
	docs := make([]any, 10000)
	for i := range docs {
		docs[i] = bson.M{"_id": fmt.Sprintf("%011d", i), "v": i, "pad": strings.Repeat("x", 500)}
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := c.FindOne(ctx, bson.M{"_id": fmt.Sprintf("%011d", (i*7919)%len(docs))}).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
