// Package activity serves a CPF's activity from an in-process cache filled
// from the store on a miss and refreshed by events, answering from cache
// (marked stale) when the store's circuit breaker is open.
package activity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/maypok86/otter/v2"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// Store is what the service needs from storage.
type Store interface {
	GetActivity(ctx context.Context, cpf string, n int) (*domain.Activity, error)
	ListMovements(ctx context.Context, f domain.MovementFilter) ([]domain.Movement, error)
	SetLastQuery(ctx context.Context, cpf string, q domain.LastQuery) error
	SetLastPurchase(ctx context.Context, cpf string, p domain.Purchase) error
	AddMovement(ctx context.Context, m domain.Movement) error
}

// Options tune the service.
type Options struct {
	// CacheSize is the maximum number of CPFs cached (default 100,000).
	CacheSize int
	// LatestMovements returned by Get (default 10).
	LatestMovements int
	// Broadcast tells the other replicas a CPF changed (nil: single replica).
	Broadcast func(ctx context.Context, cpf string)
	// BroadcastQuery tells the other replicas a CPF has a new last query,
	// which they patch into their cache without reloading.
	BroadcastQuery func(ctx context.Context, cpf string, q domain.LastQuery)
}

// entry is an immutable cache value. act is nil for "nothing known" (a
// cached miss). fresh is false after an invalidation that could not reload:
// the next read goes to the store first, and uses the entry only if the
// store is unreachable.
type entry struct {
	act   *domain.Activity
	fresh bool
}

// Service serves activity.
type Service struct {
	store   Store
	breaker *breaker.Breaker
	cache   *otter.Cache[string, entry]
	opts    Options
	logger  *slog.Logger
}

// New returns a service. b guards every store call.
func New(store Store, b *breaker.Breaker, opts Options, logger *slog.Logger) (*Service, error) {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if opts.LatestMovements <= 0 {
		opts.LatestMovements = 10
	}
	cache, err := otter.New(&otter.Options[string, entry]{MaximumSize: opts.CacheSize})
	if err != nil {
		return nil, err
	}
	return &Service{store: store, breaker: b, cache: cache, opts: opts, logger: logger}, nil
}

// IsStoreFailure is the breaker's failure test: only an unreachable store
// counts, not a missing CPF.
func IsStoreFailure(err error) bool {
	return errors.Is(err, domain.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

func (s *Service) load(ctx context.Context, cpf string) (entry, error) {
	a, err := breaker.Do(s.breaker, func() (*domain.Activity, error) {
		a, err := s.store.GetActivity(ctx, cpf, s.opts.LatestMovements)
		if errors.Is(err, domain.ErrNotFound) {
			return nil, nil
		}
		return a, err
	})
	if err != nil {
		return entry{}, err
	}
	return entry{act: a, fresh: true}, nil
}

// Get returns the CPF's activity. stale is true when the answer came from
// cache because the store is unavailable.
func (s *Service) Get(ctx context.Context, cpf string) (act *domain.Activity, stale bool, err error) {
	e, ok := s.cache.GetIfPresent(cpf)
	storeDown := s.breaker.State() == breaker.Open
	if ok && (e.fresh || storeDown) {
		return found(e, storeDown)
	}
	ne, err := s.load(ctx, cpf)
	if err != nil {
		if ok {
			// The store failed; the cached answer is better than none.
			return found(e, true)
		}
		return nil, false, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	s.cache.Set(cpf, ne)
	return found(ne, false)
}

func found(e entry, stale bool) (*domain.Activity, bool, error) {
	if e.act == nil {
		return nil, stale, domain.ErrNotFound
	}
	return e.act, stale, nil
}

// ListMovements pages through movements (always from the store: windows
// and pages are not cached).
func (s *Service) ListMovements(ctx context.Context, f domain.MovementFilter) ([]domain.Movement, error) {
	return breaker.Do(s.breaker, func() ([]domain.Movement, error) { return s.store.ListMovements(ctx, f) })
}

// Refresh reloads the CPF from the store into the cache; when the store is
// unreachable the cached entry is kept but marked not fresh.
func (s *Service) Refresh(ctx context.Context, cpf string) {
	ne, err := s.load(ctx, cpf)
	if err != nil {
		s.cache.ComputeIfPresent(cpf, func(old entry) (entry, otter.ComputeOp) {
			old.fresh = false
			return old, otter.WriteOp
		})
		return
	}
	s.cache.Set(cpf, ne)
}

// InvalidateAll drops the whole cache (after missing invalidations).
func (s *Service) InvalidateAll() { s.cache.InvalidateAll() }

// written updates this replica's cache and tells the others.
func (s *Service) written(ctx context.Context, cpf string) {
	s.Refresh(ctx, cpf)
	if s.opts.Broadcast != nil {
		s.opts.Broadcast(ctx, cpf)
	}
}

// RecordQuery applies a cpf.queried event: store first, then cache. Every
// lookup of a CPF produces one, so the cache is patched in place (here and,
// through the broadcast, on every replica) rather than reloaded: hot CPFs
// stay cached.
func (s *Service) RecordQuery(ctx context.Context, cpf string, q domain.LastQuery) error {
	if err := s.breaker.Run(func() error { return s.store.SetLastQuery(ctx, cpf, q) }); err != nil {
		return err
	}
	s.PatchQuery(cpf, q)
	if s.opts.BroadcastQuery != nil {
		s.opts.BroadcastQuery(ctx, cpf, q)
	} else if s.opts.Broadcast != nil {
		s.opts.Broadcast(ctx, cpf)
	}
	return nil
}

// PatchQuery sets a cached entry's last query if q is newer. An entry
// cached as "nothing known" is dropped instead (the CPF now has data).
func (s *Service) PatchQuery(cpf string, q domain.LastQuery) {
	s.cache.ComputeIfPresent(cpf, func(old entry) (entry, otter.ComputeOp) {
		if old.act == nil {
			return old, otter.InvalidateOp
		}
		if old.act.LastQuery != nil && !q.QueriedAt.After(old.act.LastQuery.QueriedAt) {
			return old, otter.CancelOp
		}
		a := *old.act
		lq := q
		a.LastQuery = &lq
		return entry{act: &a, fresh: old.fresh}, otter.WriteOp
	})
}

// RecordPurchase applies a card.purchase.recorded event.
func (s *Service) RecordPurchase(ctx context.Context, cpf string, p domain.Purchase) error {
	if err := s.breaker.Run(func() error { return s.store.SetLastPurchase(ctx, cpf, p) }); err != nil {
		return err
	}
	s.written(ctx, cpf)
	return nil
}

// RecordMovement applies a financial.movement.recorded event.
func (s *Service) RecordMovement(ctx context.Context, m domain.Movement) error {
	if err := s.breaker.Run(func() error { return s.store.AddMovement(ctx, m) }); err != nil {
		return err
	}
	s.written(ctx, m.CPF)
	return nil
}
