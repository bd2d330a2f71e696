package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
	"github.com/strata-bureau/strata/services/base-c/internal/store"
)

func TestReadAndEventPathsLookUpByIDOnly(t *testing.T) {
	t.Parallel()
	st, cmds, _ := testenv.MongoStore(t, "basec", store.New)
	ctx := testenv.Context(t)
	const cpf = "52998224725"
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	if err := st.SetLastQueries(ctx, map[string]domain.LastQuery{cpf: {QueriedAt: t0, PartnerID: "p2", Base: "base-c"}, "11144477735": {QueriedAt: t0, PartnerID: "p1", Base: "base-b"}}); err != nil {
		t.Fatal(err)
	}
	cmds.ByIDOnly(t, "SetLastQueries")
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
	cmds.ByIDOnly(t, "SetLastQuery/SetLastPurchase")
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
	cmds.ByIDOnly(t, "AddMovement")
	a, err := st.GetActivity(ctx, cpf, 10)
	if err != nil {
		t.Fatal(err)
	}
	cmds.ByIDOnly(t, "GetActivity")
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
	st, _, _ := testenv.MongoStore(t, "basec", store.New)
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
	st, cmds, db := testenv.MongoStore(t, "basec", store.New)
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
	cmds.Take()
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
	filters := cmds.Take()
	if len(filters) < 2 {
		t.Fatalf("finds seen: %v", filters)
	}
	for _, cmd := range filters {
		var filter bson.D
		if err := bson.Unmarshal(cmd, &filter); err != nil {
			t.Fatal(err)
		}
		var out bson.M
		if err := db.RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "movements"}, {Key: "filter", Value: filter}}}}).Decode(&out); err != nil {
			t.Fatal(err)
		}
		plan := fmt.Sprint(out["queryPlanner"])
		if !strings.Contains(plan, "SEARCH") || strings.Contains(plan, "SCAN") {
			t.Fatalf("filter %s is not an index search: %s", cmd, plan)
		}
	}
}
