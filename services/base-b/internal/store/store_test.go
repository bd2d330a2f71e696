package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

func TestWritesFilterByIDOnlyAndNewestSummaryWins(t *testing.T) {
	t.Parallel()
	st, fs, _ := testenv.MongoStore(t, "baseb", store.New)
	ctx := testenv.Context(t)
	const cpf = "52998224725"
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, v := range []int64{2, 3, 1} {
		if err := st.ApplyDebtSummary(ctx, cpf, domain.DebtSummary{OpenCount: int32(v), Currency: "BRL", AsOf: at, Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	fs.ByIDOnly(t, "ApplyDebtSummary")
	if _, err := st.Upsert(ctx, cpf, "1990-01-01", domain.Address{City: "Recife"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAsset(ctx, cpf, domain.Asset{ID: "a1", Kind: "vehicle", ValueCents: 10, Currency: "BRL"}); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveAsset(ctx, cpf, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveAsset(ctx, cpf, "a1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("removing a missing asset: %v", err)
	}
	if err := st.RemoveAsset(ctx, "11144477735", "a1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("removing from a missing profile: %v", err)
	}
	if err := st.RecordAccesses(ctx, map[string]store.Access{cpf: {Who: "p", IP: "1.2.3.4", What: "profile", At: at}}); err != nil {
		t.Fatal(err)
	}
	p, err := st.Get(ctx, cpf)
	if err != nil {
		t.Fatal(err)
	}
	fs.ByIDOnly(t, "profile writes and reads")
	if p.DebtSummary == nil || p.DebtSummary.Version != 3 || p.DebtSummary.OpenCount != 3 {
		t.Fatalf("highest version did not win: %+v", p.DebtSummary)
	}
	if len(p.Assets) != 0 || p.Address.City != "Recife" {
		t.Fatalf("profile: %+v", p)
	}
}

// FerretDB's updates are read-modify-write, not atomic: a last_access
// flush racing a profile write on the same document can write back the
// document it read and undo the profile write. last_access lives in its
// own collection, so concurrent asset additions and access flushes on one
// CPF lose nothing, and the newest access wins whatever order the flushes
// land in. One writer and one flusher, as in one replica: FerretDB's
// updates of one document still race each other (concurrent profile
// writes, or two replicas' flushes of one CPF; see README).
func TestAccessFlushesNeverLoseProfileWrites(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	_, db := testenv.MongoDB(t)
	st := store.New(db)
	const cpf, writers, perWriter, flushers, flushes = "52998224725", 1, 60, 1, 120
	if _, err := st.Upsert(ctx, cpf, "1990-01-01", domain.Address{City: "Recife"}); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter+flushers*flushes)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				a := domain.Asset{ID: fmt.Sprintf("w%d-%d", w, i), Kind: domain.AssetVehicle, ValueCents: 1, Currency: "BRL"}
				if err := st.AddAsset(ctx, cpf, a); err != nil {
					errs <- err
				}
			}
		}()
	}
	for f := range flushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range flushes {
				// Flushers interleave their times: flusher f's i-th access is
				// at start + (i*flushers+f) seconds.
				at := start.Add(time.Duration(i*flushers+f) * time.Second)
				if err := st.RecordAccesses(ctx, map[string]store.Access{cpf: {Who: fmt.Sprintf("f%d", f), IP: "10.0.0.1", What: "profile", At: at}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p, err := st.Get(ctx, cpf)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Assets) != writers*perWriter {
		t.Fatalf("%d of %d assets kept: concurrent access flushes lost profile writes", len(p.Assets), writers*perWriter)
	}
	la, err := st.LastAccess(ctx, cpf)
	if err != nil {
		t.Fatal(err)
	}
	newest := start.Add(time.Duration(flushes*flushers-1) * time.Second)
	if la == nil || !la.At.Equal(newest) || la.Who != fmt.Sprintf("f%d", flushers-1) {
		t.Fatalf("last access %+v, want the newest (%s by f%d)", la, newest, flushers-1)
	}
	// An older access flushed late does not replace a newer one.
	if err := st.RecordAccesses(ctx, map[string]store.Access{cpf: {Who: "late", At: start}}); err != nil {
		t.Fatal(err)
	}
	if la, err := st.LastAccess(ctx, cpf); err != nil || !la.At.Equal(newest) {
		t.Fatalf("after a late, older flush: %+v %v", la, err)
	}
	// The profile document itself carries no last_access.
	var raw bson.M
	if err := db.Collection("profiles").FindOne(ctx, bson.M{"_id": cpf}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["last_access"]; ok {
		t.Fatalf("last_access written to the profile: %v", raw["last_access"])
	}
}
