// Package activity serves a CPF's activity from an in-process cache filled
// from the store on a miss and refreshed by events, answering from cache
// (marked stale) when the store's circuit breaker is open.
package activity

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"sync/atomic"

	"github.com/maypok86/otter/v2"

	"github.com/strata-bureau/strata/pkg/breaker"
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

// entry is an immutable cache value. act is nil for "nothing known" (a
// cached miss). fresh is false after an invalidation that could not reload:
// the next read goes to the store first, and uses the entry only if the
// store is unreachable. A placeholder holds no answer at all: it only
// records, for a CPF that was not cached, that a write's reload failed.
//
// seq orders loads: it is taken before the store is read, so a load that
// started before a write has a smaller seq than the reload that follows
// the write, and can never overwrite it however late it finishes.
type entry struct {
	act         *domain.Activity
	fresh       bool
	placeholder bool
	seq         uint64
}

// Service serves activity.
type Service struct {
	store   Store
	breaker *breaker.Breaker
	cache   *otter.Cache[string, entry]
	// hits and misses count Get's answers from cache and from the store.
	hits, misses atomic.Int64
	opts         Options
	logger       *slog.Logger
	seq          atomic.Uint64
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
	seq := s.seq.Add(1)
	a, err := breaker.Do(s.breaker, func() (*domain.Activity, error) {
		a, err := s.store.GetActivity(ctx, cpf, s.opts.LatestMovements)
		if errors.Is(err, domain.ErrNotFound) {
			return nil, nil
		}
		return a, err
	})
	if err != nil {
		return entry{seq: seq}, err
	}
	return entry{act: a, fresh: true, seq: seq}, nil
}

// put caches ne unless the cache already holds the result of a later load.
func (s *Service) put(cpf string, ne entry) {
	s.cache.Compute(cpf, func(old entry, found bool) (entry, otter.ComputeOp) {
		if found && old.seq > ne.seq {
			return old, otter.CancelOp
		}
		return ne, otter.WriteOp
	})
}

// CacheStats returns how many reads were answered from the cache (hits)
// and how many went to the store (misses) since start.
func (s *Service) CacheStats() (hits, misses int64) { return s.hits.Load(), s.misses.Load() }

// Get returns the CPF's activity. stale is true when the answer came from
// cache because the store is unavailable.
func (s *Service) Get(ctx context.Context, cpf string) (act *domain.Activity, stale bool, err error) {
	e, ok := s.cache.GetIfPresent(cpf)
	ok = ok && !e.placeholder
	storeDown := s.breaker.State() == breaker.Open
	span := trace.SpanFromContext(ctx)
	if ok && (e.fresh || storeDown) {
		s.hits.Add(1)
		span.SetAttributes(attribute.String("strata.basec.cache", "hit"))
		return found(e, storeDown)
	}
	s.misses.Add(1)
	// A miss explains a read that waited for the store (its Mongo spans
	// follow in the trace).
	span.SetAttributes(attribute.String("strata.basec.cache", "miss"))
	ne, err := s.load(ctx, cpf)
	if err != nil {
		if ok {
			// The store failed; the cached answer is better than none.
			return found(e, true)
		}
		return nil, false, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	s.put(cpf, ne)
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
// unreachable the cached entry is kept but marked not fresh (and a CPF not
// cached gets a placeholder, so a read that loaded before the write cannot
// cache what it read as fresh).
func (s *Service) Refresh(ctx context.Context, cpf string) {
	ne, err := s.load(ctx, cpf)
	if err != nil {
		s.cache.Compute(cpf, func(old entry, found bool) (entry, otter.ComputeOp) {
			if !found {
				return entry{placeholder: true, seq: ne.seq}, otter.WriteOp
			}
			if old.seq > ne.seq {
				return old, otter.CancelOp
			}
			old.fresh, old.seq = false, ne.seq
			return old, otter.WriteOp
		})
		return
	}
	s.put(cpf, ne)
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
	s.cache.ComputeIfPresent(cpf, func(old entry) (entry, otter.ComputeOp) {
		if old.placeholder {
			return old, otter.CancelOp
		}
		if old.act == nil {
			return entry{placeholder: true, seq: s.seq.Add(1)}, otter.WriteOp
		}
		if old.act.LastQuery != nil && !q.QueriedAt.After(old.act.LastQuery.QueriedAt) {
			return old, otter.CancelOp
		}
		a := *old.act
		lq := q
		a.LastQuery = &lq
		return entry{act: &a, fresh: old.fresh, seq: old.seq}, otter.WriteOp
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
