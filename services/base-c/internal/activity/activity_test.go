package activity_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-c/internal/activity"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
	"github.com/strata-bureau/strata/services/base-c/internal/store"
)

// pausingStore is the real store, except that the first GetActivity waits,
// after reading, until released: it lets a test finish a read's load after
// a write that happened while the read was in flight.
type pausingStore struct {
	*store.Store
	calls   atomic.Int32
	read    chan struct{}
	release chan struct{}
}

func (p *pausingStore) GetActivity(ctx context.Context, cpf string, n int) (*domain.Activity, error) {
	a, err := p.Store.GetActivity(ctx, cpf, n)
	if p.calls.Add(1) == 1 {
		close(p.read)
		<-p.release
	}
	return a, err
}

// A read that loaded before a write but finishes after the write's reload
// must not put what it read back into the cache: the cache has no expiry,
// so the write would stay invisible on this replica.
func TestLateLoadDoesNotOverwriteNewerWrite(t *testing.T) {
	t.Parallel()
	_, db := testenv.MongoDB(t)
	ctx := testenv.Context(t)
	st := &pausingStore{Store: store.New(db), read: make(chan struct{}), release: make(chan struct{})}
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	const cpf = "52998224725"
	if err := st.AddMovement(ctx, domain.Movement{ID: "m1", CPF: cpf, AmountCents: 100, Currency: "BRL",
		Direction: domain.Credit, Description: "pix", OccurredAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	acts, err := activity.New(st, breaker.Standalone(breaker.Config{Name: "t"}), activity.Options{}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		a   *domain.Activity
		err error
	}
	first := make(chan result, 1)
	go func() {
		a, _, err := acts.Get(ctx, cpf)
		first <- result{a, err}
	}()
	<-st.read // the read has loaded: no purchase yet

	p := domain.Purchase{AmountCents: 349900, Currency: "BRL", Merchant: "Eletro Brasil", Installments: 10,
		OccurredAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := acts.RecordPurchase(ctx, cpf, p); err != nil {
		t.Fatal(err)
	}
	close(st.release)
	r := <-first
	if r.err != nil || r.a.LastPurchase != nil {
		t.Fatalf("the in-flight read should answer what it loaded: %+v, %v", r.a, r.err)
	}

	a, stale, err := acts.Get(ctx, cpf)
	if err != nil || stale {
		t.Fatalf("get: stale=%v err=%v", stale, err)
	}
	if a.LastPurchase == nil || a.LastPurchase.Merchant != "Eletro Brasil" {
		t.Fatalf("the late load overwrote the write: last purchase %+v", a.LastPurchase)
	}
	if n := st.calls.Load(); n != 2 {
		t.Fatalf("store reads = %d, want 2 (the read, the write's reload; the last read from cache)", n)
	}
}
