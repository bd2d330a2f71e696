package testenv

import (
	"context"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Filters records the filter of every find, findAndModify, update and
// delete statement a client sends (see MongoDBWithFilters).
type Filters struct {
	mu  sync.Mutex
	all []bson.Raw
}

// MongoDBWithFilters returns a fresh database (name prefix prefix) on a
// client whose statements' filters are recorded; both end with the test.
func MongoDBWithFilters(t testing.TB, prefix string) (*mongo.Database, *Filters) {
	t.Helper()
	fs := &Filters{}
	client, err := mongo.Connect(options.Client().ApplyURI(MongoURI(t)).SetMonitor(fs.monitor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	db := client.Database(UniqueName(t, prefix))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	return db, fs
}

// MongoStore opens a store (newStore) on a MongoDBWithFilters database,
// with its indexes, and forgets the statements that took.
func MongoStore[S interface {
	EnsureIndexes(ctx context.Context) error
}](t testing.TB, prefix string, newStore func(*mongo.Database) S) (S, *Filters, *mongo.Database) {
	t.Helper()
	db, fs := MongoDBWithFilters(t, prefix)
	st := newStore(db)
	if err := st.EnsureIndexes(Context(t)); err != nil {
		t.Fatal(err)
	}
	fs.Take()
	return st, fs, db
}

func (f *Filters) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		var seen []bson.Raw
		switch e.CommandName {
		case "find", "findAndModify":
			key := map[string]string{"find": "filter", "findAndModify": "query"}[e.CommandName]
			if v, err := e.Command.LookupErr(key); err == nil {
				seen = append(seen, v.Document())
			}
		case "update", "delete":
			// The statements may travel as a document sequence rather
			// than in the command body: read them when they are there.
			key := map[string]string{"update": "updates", "delete": "deletes"}[e.CommandName]
			if v, err := e.Command.LookupErr(key); err == nil {
				vals, _ := v.Array().Values()
				for _, s := range vals {
					seen = append(seen, s.Document().Lookup("q").Document())
				}
			}
		default:
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.all = append(f.all, seen...)
	}}
}

// Take returns the filters recorded since the last Take and forgets them.
func (f *Filters) Take() []bson.Raw {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.all
	f.all = nil
	return out
}

// ByIDOnly fails t unless a statement was sent since the last Take and
// every filter is {_id: <string>} alone: FerretDB v1 pushes only that
// filter down to SQLite (and so to the _id index); it scans the whole
// collection for any other. It forgets the filters it checked.
func (f *Filters) ByIDOnly(t testing.TB, what string) {
	t.Helper()
	all := f.Take()
	if len(all) == 0 {
		t.Fatalf("%s: no statement seen", what)
	}
	for _, raw := range all {
		elems, _ := raw.Elements()
		if len(elems) != 1 || elems[0].Key() != "_id" || elems[0].Value().Type != bson.TypeString {
			t.Fatalf("%s: filter %s is not {_id: string} alone: FerretDB scans the collection for it", what, raw)
		}
	}
}
