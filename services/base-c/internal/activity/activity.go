// Package activity serves a CPF's activity from an in-process cache filled
// from the store on a miss and refreshed by events, answering from cache
// (marked stale) when the store's circuit breaker is open.
package activity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/readcache"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// Store is what the service needs from storage.
type Store interface {
	GetActivity(ctx context.Context, cpf string, n int) (*domain.Activity, error)
	ListMovements(ctx context.Context, f domain.MovementFilter) ([]domain.Movement, error)
	SetLastQuery(ctx context.Context, cpf string, q domain.LastQuery) error
	SetLastQueries(ctx context.Context, qs map[string]domain.LastQuery) error
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
	// BroadcastQueries tells the other replicas about many new last
	// queries in one message (preferred over BroadcastQuery when set).
	BroadcastQueries func(ctx context.Context, qs map[string]domain.LastQuery)
}

// Service serves activity.
type Service struct {
	store   Store
	breaker *breaker.Breaker
	// cache holds each CPF's activity (nil: nothing known); see
	// pkg/readcache for how loads, writes and outages are ordered.
	cache  *readcache.Cache[*domain.Activity]
	opts   Options
	logger *slog.Logger
}

// New returns a service. b guards every store call.
func New(store Store, b *breaker.Breaker, opts Options, logger *slog.Logger) (*Service, error) {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if opts.LatestMovements <= 0 {
		opts.LatestMovements = 10
	}
	s := &Service{store: store, breaker: b, opts: opts, logger: logger}
	cache, err := readcache.New(readcache.Options[*domain.Activity]{Size: opts.CacheSize, Breaker: b, SpanAttribute: "strata.basec.cache",
		Load: func(ctx context.Context, cpf string) (*domain.Activity, bool, error) {
			a, err := store.GetActivity(ctx, cpf, opts.LatestMovements)
			if errors.Is(err, domain.ErrNotFound) {
				return nil, false, nil
			}
			return a, err == nil, err
		}})
	if err != nil {
		return nil, err
	}
	s.cache = cache
	return s, nil
}

// IsStoreFailure is the breaker's failure test: only an unreachable store
// counts, not a missing CPF.
func IsStoreFailure(err error) bool {
	return errors.Is(err, domain.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// CacheStats returns how many reads were answered from the cache (hits)
// and how many went to the store (misses) since start.
func (s *Service) CacheStats() (hits, misses int64) { return s.cache.Stats() }

// Get returns the CPF's activity. stale is true when the answer came from
// cache because the store is unavailable.
func (s *Service) Get(ctx context.Context, cpf string) (act *domain.Activity, stale bool, err error) {
	a, found, stale, err := s.cache.Get(ctx, cpf)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	if !found {
		return nil, stale, domain.ErrNotFound
	}
	return a, stale, nil
}

// ListMovements pages through movements (always from the store: windows
// and pages are not cached).
func (s *Service) ListMovements(ctx context.Context, f domain.MovementFilter) ([]domain.Movement, error) {
	return breaker.Do(s.breaker, func() ([]domain.Movement, error) { return s.store.ListMovements(ctx, f) })
}

// Refresh reloads the CPF from the store into the cache (see
// readcache.Cache.Refresh for a store that is unreachable).
func (s *Service) Refresh(ctx context.Context, cpf string) { s.cache.Refresh(ctx, cpf) }

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

// RecordQueries applies a batch of cpf.queried events, already coalesced
// to the newest per CPF: one bulk write, then this replica's cache, then
// one broadcast to the others.
func (s *Service) RecordQueries(ctx context.Context, qs map[string]domain.LastQuery) error {
	if len(qs) == 0 {
		return nil
	}
	if err := s.breaker.Run(func() error { return s.store.SetLastQueries(ctx, qs) }); err != nil {
		return err
	}
	for cpf, q := range qs {
		s.PatchQuery(cpf, q)
	}
	switch {
	case s.opts.BroadcastQueries != nil:
		s.opts.BroadcastQueries(ctx, qs)
	case s.opts.BroadcastQuery != nil:
		for cpf, q := range qs {
			s.opts.BroadcastQuery(ctx, cpf, q)
		}
	case s.opts.Broadcast != nil:
		for cpf := range qs {
			s.opts.Broadcast(ctx, cpf)
		}
	}
	return nil
}

// PatchQuery sets a cached entry's last query if q is newer. An entry
// cached as "nothing known" becomes a placeholder instead (the CPF now has
// data; the next read loads it, and a load older than this cannot win).
func (s *Service) PatchQuery(cpf string, q domain.LastQuery) {
	s.cache.Patch(cpf, func(old *domain.Activity) (*domain.Activity, bool) {
		if old.LastQuery != nil && !q.QueriedAt.After(old.LastQuery.QueriedAt) {
			return old, false
		}
		a := *old
		lq := q
		a.LastQuery = &lq
		return &a, true
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
