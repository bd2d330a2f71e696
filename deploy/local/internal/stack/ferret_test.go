package stack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
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
	client := startFerret(ctx, t)
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
		// A filter on another field that is not a string is not pushed
		// down: it scans.
		if plan := explainFind(ctx, t, db, name, bson.D{{Key: "v", Value: 3}}); !strings.Contains(plan, "SCAN") {
			t.Fatalf("%s: expected a scan for a non-string filter, got %s", name, plan)
		}
	}
}

// TestFerretStringFieldFilterUsesIndex proves the second part of the patch:
// a filter whose top-level condition is {field: "string"} reads only the
// rows the field's index points at (SQLite SEARCH, no SCAN), other
// conditions beside it included, and still answers exactly what MongoDB
// would: a document whose field is an array holding the string matches,
// and strings the pushdown leaves alone (quotes, non-ASCII) still match
// through the full scan.
func TestFerretStringFieldFilterUsesIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := startFerret(ctx, t)
	db := client.Database("plan")
	c := db.Collection("movements")
	if _, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "cpf", Value: 1}, {Key: "at", Value: -1}}}); err != nil {
		t.Fatal(err)
	}
	var docs []any
	for i := range 2000 {
		docs = append(docs, bson.M{"_id": fmt.Sprintf("m%05d", i), "cpf": fmt.Sprintf("%011d", i%200), "at": i})
	}
	docs = append(docs,
		bson.M{"_id": "array", "cpf": bson.A{"x", "00000000007"}, "at": 1},
		bson.M{"_id": "quoted", "cpf": `a"b`, "at": 1},
		bson.M{"_id": "accented", "cpf": "joão", "at": 1},
		bson.M{"_id": "nested", "cpf": bson.M{"v": "00000000007"}, "at": 1},
	)
	if _, err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	filter := bson.D{{Key: "cpf", Value: "00000000007"}, {Key: "at", Value: bson.M{"$gte": 500}}}
	if plan := explainFind(ctx, t, db, "movements", filter); !strings.Contains(plan, "SEARCH") || strings.Contains(plan, "SCAN") {
		t.Fatalf("find by a string field is not an index search: %s", plan)
	}
	ids := func(filter bson.D) []string {
		t.Helper()
		cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &got); err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(got))
		for i, g := range got {
			out[i] = g.ID
		}
		return out
	}
	// cpf 7 is m00007, m00207, … m01807; those with at >= 500 are seven.
	if got, want := fmt.Sprint(ids(filter)), "[m00607 m00807 m01007 m01207 m01407 m01607 m01807]"; got != want {
		t.Fatalf("cpf and at filter: %s, want %s", got, want)
	}
	if got := ids(bson.D{{Key: "cpf", Value: "00000000007"}}); len(got) != 11 || got[0] != "array" {
		t.Fatalf("cpf filter must match the 10 documents and the array holding it: %v", got)
	}
	for _, v := range []string{`a"b`, "joão"} {
		if got := ids(bson.D{{Key: "cpf", Value: v}}); len(got) != 1 {
			t.Fatalf("cpf %q: %v", v, got)
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

// BenchmarkFerretFindByID measures a find by _id in collections of 10k and
// 300k documents (about 180 MiB, far beyond SQLite's default page cache),
// ids spread over the whole collection (a full scan stops at the match,
// so low ids alone would hide one): flat with data size, the two agree.
func BenchmarkFerretFindByID(b *testing.B) {
	for _, n := range []int{10000, 300000} {
		b.Run(fmt.Sprintf("docs=%dk", n/1000), func(b *testing.B) {
			ctx := context.Background()
			c := benchCollection(ctx, b, n)
			cpu := startCPU()
			for i := 0; b.Loop(); i++ {
				if err := c.FindOne(ctx, bson.M{"_id": fmt.Sprintf("%011d", (i*7919)%n)}).Err(); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, b.N, "find")
		})
	}
}

// BenchmarkFerretUpsertByID measures the side-effect write Base C's
// last_query and Base B's last_access make: bulk writes of 100 $max upserts
// by _id, half of them of new documents, in a 10k-document collection.
func BenchmarkFerretUpsertByID(b *testing.B) {
	ctx := context.Background()
	c := benchCollection(ctx, b, 10000)
	cpu := startCPU()
	n := 0
	for b.Loop() {
		models := make([]mongo.WriteModel, 0, 100)
		for range 100 {
			n++
			q := bson.D{{Key: "queried_at", Value: time.Now()}, {Key: "partner_id", Value: "p1"}}
			models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": fmt.Sprintf("%011d", (n*7919)%20000)}).
				SetUpdate(bson.M{"$max": bson.M{"last_query": q, "updated_at": time.Now()}}).SetUpsert(true))
		}
		if _, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/upsert")
	cpu.report(b, n, "upsert")
}

// benchCollection starts FerretDB and fills a collection with n documents
// of about the size of a Strata record.
func benchCollection(ctx context.Context, b *testing.B, n int) *mongo.Collection {
	c := startFerret(ctx, b).Database("bench").Collection("docs")
	for start := 0; start < n; start += 10000 {
		docs := make([]any, 0, 10000)
		for i := start; i < min(n, start+10000); i++ {
			docs = append(docs, bson.M{"_id": fmt.Sprintf("%011d", i), "v": i, "pad": strings.Repeat("x", 500)})
		}
		if _, err := c.InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// processCPU is this process's CPU time (FerretDB and the client both run
// in it) at the start of a measurement.
type processCPU time.Duration

func startCPU() processCPU { return processCPU(cpuTime()) }

func (p processCPU) report(b *testing.B, ops int, unit string) {
	b.ReportMetric(float64((cpuTime()-time.Duration(p)).Microseconds())/float64(max(ops, 1)), "cpu-µs/"+unit)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFerretConcurrentUpdatesOfOneDocumentAreAllApplied proves the third
// part of the patch: FerretDB's update reads a document and writes it back
// in two steps, so as released two concurrent updates of one document
// could both read the old version and one undid the other. Eight writers
// each apply 25 $inc and $push updates (and findAndModify) to one document:
// every one must be there, as on MongoDB.
func TestFerretConcurrentUpdatesOfOneDocumentAreAllApplied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := startFerret(ctx, t)
	c := client.Database("race").Collection("docs")
	if _, err := c.InsertOne(ctx, bson.M{"_id": "one", "n": 0, "items": bson.A{}}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				item := fmt.Sprintf("w%d-%d", w, i)
				var err error
				if i%2 == 0 {
					_, err = c.UpdateOne(ctx, bson.M{"_id": "one"}, bson.M{"$inc": bson.M{"n": 1}, "$push": bson.M{"items": item}})
				} else {
					err = c.FindOneAndUpdate(ctx, bson.M{"_id": "one"}, bson.M{"$inc": bson.M{"n": 1}, "$push": bson.M{"items": item}}).Err()
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var got struct {
		N     int      `bson:"n"`
		Items []string `bson:"items"`
	}
	if err := c.FindOne(ctx, bson.M{"_id": "one"}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.N != writers*each || len(got.Items) != writers*each {
		t.Fatalf("%d increments and %d items kept of %d: concurrent updates were lost", got.N, len(got.Items), writers*each)
	}
}

// TestFerretStatementsPayNoDebugCost proves changes 4 and 5 of the patch:
// as released, every SQL statement formatted its arguments (whole
// documents) into a logger with debug logging off, and every cursor and
// transaction was tracked with a stack trace in a pprof profile, together
// about a fifth of FerretDB's CPU per statement. After finds, inserts and
// upserts, no statement's arguments may have reached the (non-debug)
// logger, and no FerretDB resource profile may exist.
func TestFerretStatementsPayNoDebugCost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := &argsSpotter{Handler: slog.NewTextHandler(io.Discard, nil), formatted: new(atomic.Int64)}
	c := startFerretLogging(ctx, t, slog.New(h)).Database("debug").Collection("docs")
	for i := range 20 {
		id := fmt.Sprintf("%03d", i)
		if _, err := c.InsertOne(ctx, bson.M{"_id": id, "v": i}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UpdateOne(ctx, bson.M{"_id": id + "x"}, bson.M{"$max": bson.M{"v": i}}, options.UpdateOne().SetUpsert(true)); err != nil {
			t.Fatal(err)
		}
		if err := c.FindOne(ctx, bson.M{"_id": id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.formatted.Load(); n > 0 {
		t.Errorf("%d statements formatted their arguments for a disabled debug log", n)
	}
	for _, p := range pprof.Profiles() {
		if strings.HasPrefix(p.Name(), "FerretDB/") {
			t.Errorf("resource profile %s exists (%d objects): release builds must not track resources", p.Name(), p.Count())
		}
	}
}

// argsSpotter is a logger (debug off) that counts loggers derived with a
// statement's "args" attribute.
type argsSpotter struct {
	slog.Handler
	formatted *atomic.Int64
}

func (h *argsSpotter) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		if a.Key == "args" {
			h.formatted.Add(1)
		}
	}
	return &argsSpotter{Handler: h.Handler.WithAttrs(as), formatted: h.formatted}
}

func (h *argsSpotter) WithGroup(name string) slog.Handler {
	return &argsSpotter{Handler: h.Handler.WithGroup(name), formatted: h.formatted}
}

// startFerret starts this FerretDB in a temporary directory for the test
// and returns a client connected to it; both end with the test.
func startFerret(ctx context.Context, tb testing.TB) *mongo.Client {
	tb.Helper()
	return startFerretLogging(ctx, tb, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func startFerretLogging(ctx context.Context, tb testing.TB, logger *slog.Logger) *mongo.Client {
	tb.Helper()
	f, err := StartFerret(ctx, tb.TempDir(), "127.0.0.1:0", logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Stop)
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}
