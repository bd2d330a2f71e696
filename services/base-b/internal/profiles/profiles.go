// Package profiles serves Base B's profiles (and so its scores) from a
// bounded in-process cache (pkg/readcache, as Base C's activity): filled
// from the store on a miss, invalidated by this replica's writes and
// applied debt summaries, and by the other replicas' broadcasts of theirs.
package profiles

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/readcache"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
)

// Store is what the cache reads and what invalidates it.
type Store interface {
	Get(ctx context.Context, cpf string) (*domain.Profile, error)
	ApplyDebtSummary(ctx context.Context, cpf string, d domain.DebtSummary) error
}

// Options tune the service.
type Options struct {
	// CacheSize is the maximum number of CPFs cached (default 100,000).
	CacheSize int
	// CacheTTL, when positive, reloads an entry that long after it was
	// cached: a bound on staleness should a broadcast be lost.
	CacheTTL time.Duration
	// Broadcast tells the other replicas that cpfs changed (nil: single
	// replica).
	Broadcast func(ctx context.Context, cpfs []string)
}

// Service serves cached profiles.
type Service struct {
	store Store
	cache *readcache.Cache[*domain.Profile]
	opts  Options
}

// New returns a service whose loads go through b.
func New(st Store, b *breaker.Breaker, opts Options) (*Service, error) {
	cache, err := readcache.New(readcache.Options[*domain.Profile]{Size: opts.CacheSize, TTL: opts.CacheTTL, Breaker: b,
		SpanAttribute: "strata.baseb.cache",
		Load: func(ctx context.Context, cpf string) (*domain.Profile, bool, error) {
			p, err := st.Get(ctx, cpf)
			if errors.Is(err, domain.ErrNotFound) {
				return nil, false, nil
			}
			return p, err == nil, err
		}})
	if err != nil {
		return nil, err
	}
	return &Service{store: st, cache: cache, opts: opts}, nil
}

// Get returns the CPF's profile (domain.ErrNotFound when there is none).
// stale is true when it came from the cache because the store is
// unavailable. The profile is shared: callers must not modify it.
func (s *Service) Get(ctx context.Context, cpf string) (p *domain.Profile, stale bool, err error) {
	p, found, stale, err := s.cache.Get(ctx, cpf)
	if err != nil {
		if errors.Is(err, breaker.ErrOpen) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	if !found {
		return nil, stale, domain.ErrNotFound
	}
	return p, stale, nil
}

// Written is called after this replica changed cpfs in the store: its
// own cache is invalidated, and the other replicas are told.
func (s *Service) Written(ctx context.Context, cpfs ...string) {
	for _, c := range cpfs {
		s.cache.Invalidate(ctx, c)
	}
	if s.opts.Broadcast != nil && len(cpfs) > 0 {
		s.opts.Broadcast(ctx, cpfs)
	}
}

// Invalidate applies another replica's broadcast.
func (s *Service) Invalidate(ctx context.Context, cpf string) { s.cache.Invalidate(ctx, cpf) }

// InvalidateAll drops the whole cache (after missing broadcasts).
func (s *Service) InvalidateAll() { s.cache.InvalidateAll() }

// ApplyDebtSummary stores a debt summary, then invalidates the CPF here
// and on the other replicas.
func (s *Service) ApplyDebtSummary(ctx context.Context, cpf string, d domain.DebtSummary) error {
	if err := s.store.ApplyDebtSummary(ctx, cpf, d); err != nil {
		return err
	}
	s.Written(ctx, cpf)
	return nil
}

// CacheStats returns how many reads were answered from the cache (hits)
// and how many went to the store (misses) since start.
func (s *Service) CacheStats() (hits, misses int64) { return s.cache.Stats() }

// CacheLen is the number of CPFs cached now.
func (s *Service) CacheLen() int { return s.cache.Len() }
