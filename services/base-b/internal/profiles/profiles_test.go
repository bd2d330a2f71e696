package profiles_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
	"github.com/strata-bureau/strata/services/base-b/internal/profiles"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

// countingStore is the real store, counting reads; when pause is set,
// the first Get waits, after reading, until released: it lets a test
// finish a read's load after a write made while the read was in flight.
type countingStore struct {
	*store.Store
	gets    atomic.Int64
	pause   bool
	read    chan struct{}
	release chan struct{}
}

func (s *countingStore) Get(ctx context.Context, c string) (*domain.Profile, error) {
	p, err := s.Store.Get(ctx, c)
	if s.gets.Add(1) == 1 && s.pause {
		close(s.read)
		<-s.release
	}
	return p, err
}

func newService(t *testing.T, size int, pause bool) (*profiles.Service, *countingStore) {
	t.Helper()
	_, db := testenv.MongoDB(t)
	st := &countingStore{Store: store.New(db), pause: pause, read: make(chan struct{}), release: make(chan struct{})}
	svc, err := profiles.New(st, breaker.Standalone(breaker.Config{Name: "t"}), profiles.Options{CacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

func person(n int) string { return string(cpf.Complete(fmt.Sprintf("%09d", 300000000+n))) }

// A read that loaded before a write but finishes after the write's
// invalidation must not cache what it read as fresh: the next read sees
// the write.
func TestLateLoadDoesNotOverwriteNewerWrite(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	svc, st := newService(t, 100, true)
	c := person(1)
	if _, err := st.Upsert(ctx, c, "1980-01-01", domain.Address{City: "Recife"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan *domain.Profile)
	go func() {
		p, _, err := svc.Get(ctx, c)
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	<-st.read // the read has loaded the old profile and is paused
	if _, err := st.Upsert(ctx, c, "1980-01-01", domain.Address{City: "Olinda"}); err != nil {
		t.Fatal(err)
	}
	svc.Written(ctx, c)
	close(st.release)
	if p := <-done; p.Address.City != "Recife" {
		t.Fatalf("the paused read should answer what it read: %q", p.Address.City)
	}
	p, _, err := svc.Get(ctx, c)
	if err != nil || p.Address.City != "Olinda" {
		t.Fatalf("after the write: %+v %v (the late load overwrote it)", p, err)
	}
	// And now it is cached: no further store read.
	before := st.gets.Load()
	for range 10 {
		if _, _, err := svc.Get(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.gets.Load() - before; n != 0 {
		t.Fatalf("%d store reads for 10 cached reads", n)
	}
}

// The cache holds at most its size, however many CPFs are read, and a
// CPF with no profile is cached as such (no store read every time).
func TestCacheIsBoundedAndCachesMisses(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	const size = 20
	svc, st := newService(t, size, false)
	for i := range 300 {
		if _, _, err := svc.Get(ctx, person(i)); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if n := svc.CacheLen(); n > size {
		t.Fatalf("%d CPFs cached, bound %d", n, size)
	}
	before := st.gets.Load()
	if _, _, err := svc.Get(ctx, person(299)); !errors.Is(err, domain.ErrNotFound) {
		t.Fatal(err)
	}
	if st.gets.Load() != before {
		t.Fatal("a cached miss went to the store")
	}
	// A write to a CPF cached as missing is seen by the next read.
	if _, err := st.Upsert(ctx, person(299), "1980-01-01", domain.Address{}); err != nil {
		t.Fatal(err)
	}
	svc.Written(ctx, person(299))
	if p, _, err := svc.Get(ctx, person(299)); err != nil || p.BirthDate != "1980-01-01" {
		t.Fatalf("after the write: %+v %v", p, err)
	}
}
