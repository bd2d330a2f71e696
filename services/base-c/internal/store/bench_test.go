package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
	"github.com/strata-bureau/strata/services/base-c/internal/store"
)

// BenchmarkGetActivityMiss is the read behind a Base C cache miss: a CPF
// with a last query, a last purchase and recent movements, read from the
// store (three finds by _id), beside one find by _id as the floor.
func BenchmarkGetActivityMiss(b *testing.B) {
	st, _, db := testenv.MongoStore(b, "basec", store.New)
	ctx := testenv.Context(b)
	const cpfs = 200
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	qs := map[string]domain.LastQuery{}
	for i := range cpfs {
		cpf := fmt.Sprintf("%011d", i)
		qs[cpf] = domain.LastQuery{QueriedAt: t0, PartnerID: "p", Base: "base-c"}
		if err := st.SetLastPurchase(ctx, cpf, domain.Purchase{AmountCents: 5, Currency: "BRL", Merchant: "m", Installments: 1, OccurredAt: t0}); err != nil {
			b.Fatal(err)
		}
		m := domain.Movement{ID: cpf + "-1", CPF: cpf, AmountCents: 7, Currency: "BRL", Direction: domain.Debit, OccurredAt: t0}
		if err := st.AddMovement(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.SetLastQueries(ctx, qs); err != nil {
		b.Fatal(err)
	}
	b.Run("GetActivity", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := st.GetActivity(ctx, fmt.Sprintf("%011d", (i*7)%cpfs), 10); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline_find_by_id", func(b *testing.B) {
		c := db.Collection("last_queries")
		for i := 0; b.Loop(); i++ {
			if err := c.FindOne(ctx, map[string]string{"_id": fmt.Sprintf("%011d", (i*7)%cpfs)}).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
