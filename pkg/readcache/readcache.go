// Package readcache is a bounded in-process read cache in front of a store
// guarded by a circuit breaker, kept right across replicas by refreshing
// on invalidation: Base B's profiles and Base C's activity.
//
// Every entry carries a sequence number taken before its load reads the
// store, so a load that started before a write can never overwrite the
// reload that follows the write, however late it finishes. A reload that
// fails leaves the entry marked not fresh (or, for a key not cached, a
// placeholder): the next read goes to the store, and uses the old entry
// only if the store is unreachable, answering it as stale. While the
// breaker is open, cached entries are answered (stale) without trying the
// store.
package readcache

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-bureau/strata/pkg/breaker"
)

// Options configure a cache.
type Options[V any] struct {
	// Size is the maximum number of keys cached (default 100,000).
	Size int
	// TTL, when positive, expires an entry that long after it was
	// written: a bound on staleness should an invalidation be lost.
	TTL time.Duration
	// Load reads a key from the store; found false is cached as "nothing
	// there" (so a miss is not a store read every time either).
	Load func(ctx context.Context, key string) (v V, found bool, err error)
	// Breaker guards every load.
	Breaker *breaker.Breaker
	// SpanAttribute, when set, is set on the caller's span to "hit" or
	// "miss" on every Get (a miss explains a read that waited for the
	// store).
	SpanAttribute string
}

// entry is an immutable cache value.
type entry[V any] struct {
	v           V
	found       bool
	fresh       bool
	placeholder bool
	seq         uint64
}

// Cache is a read cache.
type Cache[V any] struct {
	o            Options[V]
	cache        *otter.Cache[string, entry[V]]
	seq          atomic.Uint64
	hits, misses atomic.Int64
}

// New returns a cache.
func New[V any](o Options[V]) (*Cache[V], error) {
	if o.Size <= 0 {
		o.Size = 100_000
	}
	oo := &otter.Options[string, entry[V]]{MaximumSize: o.Size}
	if o.TTL > 0 {
		oo.ExpiryCalculator = otter.ExpiryWriting[string, entry[V]](o.TTL)
	}
	c, err := otter.New(oo)
	if err != nil {
		return nil, err
	}
	return &Cache[V]{o: o, cache: c}, nil
}

func (c *Cache[V]) load(ctx context.Context, key string) (entry[V], error) {
	seq := c.seq.Add(1)
	var found bool
	v, err := breaker.Do(c.o.Breaker, func() (V, error) {
		v, f, err := c.o.Load(ctx, key)
		found = f
		return v, err
	})
	if err != nil {
		return entry[V]{seq: seq}, err
	}
	return entry[V]{v: v, found: found, fresh: true, seq: seq}, nil
}

// put caches ne unless the cache already holds the result of a later load.
func (c *Cache[V]) put(key string, ne entry[V]) {
	c.cache.Compute(key, func(old entry[V], found bool) (entry[V], otter.ComputeOp) {
		if found && old.seq > ne.seq {
			return old, otter.CancelOp
		}
		return ne, otter.WriteOp
	})
}

// Get returns the key's value (found false: the store has none). stale is
// true when the answer came from the cache because the store is
// unavailable. err is the load's error (wrapping breaker.ErrOpen when the
// breaker refused it) when the store failed and nothing was cached.
func (c *Cache[V]) Get(ctx context.Context, key string) (v V, found, stale bool, err error) {
	e, ok := c.cache.GetIfPresent(key)
	ok = ok && !e.placeholder
	storeDown := c.o.Breaker.State() == breaker.Open
	if ok && (e.fresh || storeDown) {
		c.hits.Add(1)
		c.mark(ctx, "hit")
		return e.v, e.found, storeDown, nil
	}
	c.misses.Add(1)
	c.mark(ctx, "miss")
	ne, err := c.load(ctx, key)
	if err != nil {
		if ok {
			// The store failed; the cached answer is better than none.
			return e.v, e.found, true, nil
		}
		var zero V
		return zero, false, false, err
	}
	c.put(key, ne)
	return ne.v, ne.found, false, nil
}

func (c *Cache[V]) mark(ctx context.Context, result string) {
	if c.o.SpanAttribute != "" {
		trace.SpanFromContext(ctx).SetAttributes(attribute.String(c.o.SpanAttribute, result))
	}
}

// Refresh reloads key from the store into the cache, after a write (here
// or on another replica). When the store is unreachable the cached entry
// is kept but marked not fresh, and a key not cached gets a placeholder,
// so a read that loaded before the write cannot cache what it read as
// fresh.
func (c *Cache[V]) Refresh(ctx context.Context, key string) {
	ne, err := c.load(ctx, key)
	if err != nil {
		c.unfresh(key, ne.seq)
		return
	}
	c.put(key, ne)
}

// Invalidate marks key changed in the store without reading it: a cached
// entry is kept only as the stale fallback (the next read reloads it), a
// key not cached gets a placeholder, and no load that started before this
// call can cache what it read as fresh. Unlike Refresh it costs no store
// read, so invalidating keys nobody reads here is free.
func (c *Cache[V]) Invalidate(_ context.Context, key string) { c.unfresh(key, c.seq.Add(1)) }

// unfresh marks key not fresh as of seq (a placeholder if not cached).
func (c *Cache[V]) unfresh(key string, seq uint64) {
	c.cache.Compute(key, func(old entry[V], found bool) (entry[V], otter.ComputeOp) {
		if !found {
			return entry[V]{placeholder: true, seq: seq}, otter.WriteOp
		}
		if old.seq > seq {
			return old, otter.CancelOp
		}
		old.fresh, old.seq = false, seq
		return old, otter.WriteOp
	})
}

// Patch updates a cached value in place with f (which must not modify v:
// return a copy), when f returns true; a key cached as "nothing there"
// becomes a placeholder instead (the store now has data for it: the next
// read loads it, and a load older than this patch cannot win).
func (c *Cache[V]) Patch(key string, f func(v V) (V, bool)) {
	c.cache.ComputeIfPresent(key, func(old entry[V]) (entry[V], otter.ComputeOp) {
		if old.placeholder {
			return old, otter.CancelOp
		}
		if !old.found {
			return entry[V]{placeholder: true, seq: c.seq.Add(1)}, otter.WriteOp
		}
		nv, ok := f(old.v)
		if !ok {
			return old, otter.CancelOp
		}
		return entry[V]{v: nv, found: true, fresh: old.fresh, seq: old.seq}, otter.WriteOp
	})
}

// InvalidateAll drops the whole cache (after missing invalidations).
func (c *Cache[V]) InvalidateAll() { c.cache.InvalidateAll() }

// Stats returns how many Gets were answered from the cache (hits) and how
// many went to the store (misses) since start.
func (c *Cache[V]) Stats() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }

// Len is the number of keys cached now (placeholders included), once
// pending evictions are done.
func (c *Cache[V]) Len() int {
	c.cache.CleanUp()
	return c.cache.EstimatedSize()
}

// ObserveLookups exports stats (a cache's Stats) as the counter name by
// result: reads answered from the cache (result=hit) and loaded from the
// store (result=miss); the hit ratio is hit / (hit + miss).
func ObserveLookups(m metric.Meter, name, description string, stats func() (hits, misses int64)) error {
	hit, miss := metric.WithAttributes(attribute.String("result", "hit")), metric.WithAttributes(attribute.String("result", "miss"))
	_, err := m.Int64ObservableCounter(name, metric.WithDescription(description),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			h, ms := stats()
			o.Observe(h, hit)
			o.Observe(ms, miss)
			return nil
		}))
	return err
}
