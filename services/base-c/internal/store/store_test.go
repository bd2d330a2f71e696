package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
	"github.com/strata-bureau/strata/services/base-c/internal/store"
)

// commands records the filter of every command sent to the server.
type commands struct {
	mu      sync.Mutex
	filters []string
}

func (c *commands) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		var filters []bson.Raw
		switch e.CommandName {
		case "find", "findAndModify":
			key := "filter"
			if e.CommandName == "findAndModify" {
				key = "query"
			}
			if v, err := e.Command.LookupErr(key); err == nil {
				filters = append(filters, v.Document())
			}
		case "update", "delete":
			key := "updates"
			if e.CommandName == "delete" {
				key = "deletes"
			}
			// The statements travel as a document sequence, not in the
			// command body: read them from the raw command when present.
			if v, err := e.Command.LookupErr(key); err == nil {
				vals, _ := v.Array().Values()
				for _, s := range vals {
					filters = append(filters, s.Document().Lookup("q").Document())
				}
			}
		default:
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, f := range filters {
			c.filters = append(c.filters, e.CommandName+" "+f.String())
		}
	}}
}

func (c *commands) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.filters
	c.filters = nil
	return out
}

func open(t testing.TB) (*store.Store, *commands) {
	t.Helper()
	st, cmds, _ := openDB(t)
	return st, cmds
}

func openDB(t testing.TB) (*store.Store, *commands, *mongo.Database) {
	t.Helper()
	cmds := &commands{}
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)).SetMonitor(cmds.monitor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	db := client.Database(testenv.UniqueName(t, "basec"))
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	st := store.New(db)
	if err := st.EnsureIndexes(testenv.Context(t)); err != nil {
		t.Fatal(err)
	}
	cmds.take()
	return st, cmds, db
}

// FerretDB v1 pushes a filter down to SQLite (and so to the _id index)
// only when it is {_id: <string>} and nothing else: every other filter
// scans the whole collection. Every store call on the read and event paths
// must therefore filter on _id alone.
func onlyByID(t *testing.T, what string, filters []string) {
	t.Helper()
	if len(filters) == 0 {
		t.Fatalf("%s: no command seen", what)
	}
	for _, f := range filters {
		var doc bson.M
		_, raw, _ := cut(f)
		if err := bson.UnmarshalExtJSON([]byte(raw), false, &doc); err != nil {
			t.Fatalf("%s: %s: %v", what, f, err)
		}
		if _, ok := doc["_id"].(string); !ok || len(doc) != 1 {
			t.Fatalf("%s: filter %s is not {_id: string} alone: FerretDB scans the collection for it", what, f)
		}
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestReadAndEventPathsLookUpByIDOnly(t *testing.T) {
	t.Parallel()
	st, cmds := open(t)
	ctx := testenv.Context(t)
	const cpf = "52998224725"
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	if err := st.SetLastQueries(ctx, map[string]domain.LastQuery{cpf: {QueriedAt: t0, PartnerID: "p2", Base: "base-c"}, "11144477735": {QueriedAt: t0, PartnerID: "p1", Base: "base-b"}}); err != nil {
		t.Fatal(err)
	}
	onlyByID(t, "SetLastQueries", cmds.take())
	// An older query does not overwrite a newer one; a newer one does.
	if err := st.SetLastQuery(ctx, cpf, domain.LastQuery{QueriedAt: t0.Add(-time.Second), PartnerID: "old", Base: "base-a"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLastPurchase(ctx, cpf, domain.Purchase{AmountCents: 5, Currency: "BRL", Merchant: "m", Installments: 1, OccurredAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLastPurchase(ctx, cpf, domain.Purchase{AmountCents: 7, Currency: "BRL", Merchant: "older", Installments: 1, OccurredAt: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	onlyByID(t, "SetLastQuery/SetLastPurchase", cmds.take())
	// 70 movements, in shuffled order and one redelivered: the activity
	// keeps the newest, trimmed, each once.
	for i := range 70 {
		k := (i * 37) % 70
		m := domain.Movement{ID: fmt.Sprintf("m%02d", k), CPF: cpf, AmountCents: int64(k + 1), Currency: "BRL",
			Direction: domain.Debit, OccurredAt: t0.Add(time.Duration(k) * time.Minute)}
		if err := st.AddMovement(ctx, m); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			if err := st.AddMovement(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	// (Inserts into the history carry no filter.)
	onlyByID(t, "AddMovement", cmds.take())
	a, err := st.GetActivity(ctx, cpf, 10)
	if err != nil {
		t.Fatal(err)
	}
	onlyByID(t, "GetActivity", cmds.take())
	if a.LastQuery == nil || a.LastQuery.PartnerID != "p2" || a.LastPurchase == nil || a.LastPurchase.Merchant != "m" {
		t.Fatalf("newest did not win: %+v %+v", a.LastQuery, a.LastPurchase)
	}
	if len(a.Movements) != 10 {
		t.Fatalf("%d movements", len(a.Movements))
	}
	for i, m := range a.Movements {
		if want := fmt.Sprintf("m%02d", 69-i); m.ID != want {
			t.Fatalf("movement %d is %s, want %s", i, m.ID, want)
		}
	}
	if _, err := st.GetActivity(ctx, "39053344705", 10); err != domain.ErrNotFound {
		t.Fatalf("unknown CPF: %v", err)
	}
}

// A batch larger than FerretDB's connection pool (100) of CPFs that all
// exist already is written in chunks: as one command it would hang.
func TestLargeBatchOfExistingCPFs(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx, cancel := context.WithTimeout(testenv.Context(t), 60*time.Second)
	defer cancel()
	qs := map[string]domain.LastQuery{}
	for i := range 300 {
		qs[fmt.Sprintf("%011d", i)] = domain.LastQuery{QueriedAt: time.Now().UTC(), PartnerID: "p", Base: "base-c"}
	}
	for range 2 {
		if err := st.SetLastQueries(ctx, qs); err != nil {
			t.Fatal(err)
		}
	}
}

// Paging through one CPF's history reads that CPF's movements through the
// cpf_occurred_at index, not the collection: the local FerretDB pushes a
// top-level {cpf: <string>} down (deploy/local/third_party/ferretdb), so
// every find ListMovements sends — first page, window, cursor — must keep
// cpf at its top level, and SQLite's plan for it (FerretDB's explain runs
// EXPLAIN QUERY PLAN on the same SQL) must be an index search.
func TestListMovementsSearchesOneCPFByIndex(t *testing.T) {
	t.Parallel()
	st, cmds, db := openDB(t)
	ctx := testenv.Context(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 40 {
		cpf := []string{"52998224725", "11144477735"}[i%2]
		m := domain.Movement{ID: fmt.Sprintf("m%02d", i), CPF: cpf, AmountCents: int64(i + 1), Currency: "BRL",
			Direction: domain.Credit, OccurredAt: t0.Add(time.Duration(i/4) * time.Minute)}
		if err := st.AddMovement(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	cmds.take()
	f := domain.MovementFilter{CPF: "52998224725", From: t0.Add(time.Minute), Limit: 3}
	var seen []string
	for {
		page, err := st.ListMovements(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			seen = append(seen, m.ID)
		}
		if len(page) < f.Limit {
			break
		}
		last := page[len(page)-1]
		f.After = &domain.Cursor{OccurredAt: last.OccurredAt, ID: last.ID}
	}
	// Even ids from minute 1 on (m04 … m38), newest first, each once.
	if got, want := fmt.Sprint(seen), "[m38 m36 m34 m32 m30 m28 m26 m24 m22 m20 m18 m16 m14 m12 m10 m08 m06 m04]"; got != want {
		t.Fatalf("pages: %s, want %s", got, want)
	}
	filters := cmds.take()
	if len(filters) < 2 {
		t.Fatalf("finds seen: %v", filters)
	}
	for _, cmd := range filters {
		_, raw, _ := cut(cmd)
		var filter bson.D
		if err := bson.UnmarshalExtJSON([]byte(raw), false, &filter); err != nil {
			t.Fatal(err)
		}
		var out bson.M
		if err := db.RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "movements"}, {Key: "filter", Value: filter}}}}).Decode(&out); err != nil {
			t.Fatal(err)
		}
		plan := fmt.Sprint(out["queryPlanner"])
		if !strings.Contains(plan, "SEARCH") || strings.Contains(plan, "SCAN") {
			t.Fatalf("filter %s is not an index search: %s", raw, plan)
		}
	}
}
