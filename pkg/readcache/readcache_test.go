package readcache_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/readcache"
)

// source is an in-memory map standing in for a store (the bases' tests
// use the real one); down makes every load fail.
type source struct {
	mu    sync.Mutex
	data  map[string]string
	loads int
	down  bool
}

func (s *source) load(_ context.Context, k string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	if s.down {
		return "", false, errors.New("store down")
	}
	v, ok := s.data[k]
	return v, ok, nil
}

func (s *source) set(k, v string) { s.mu.Lock(); s.data[k] = v; s.mu.Unlock() }

func newCache(t *testing.T, src *source, o readcache.Options[string]) *readcache.Cache[string] {
	t.Helper()
	o.Load, o.Breaker = src.load, breaker.Standalone(breaker.Config{Name: "t", ConsecutiveFailures: 2})
	c, err := readcache.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInvalidateReadsNothingAndTheNextGetReloads(t *testing.T) {
	src := &source{data: map[string]string{"a": "1"}}
	c := newCache(t, src, readcache.Options[string]{})
	ctx := context.Background()
	if v, found, _, err := c.Get(ctx, "a"); err != nil || !found || v != "1" {
		t.Fatalf("%q %v %v", v, found, err)
	}
	src.set("a", "2")
	c.Invalidate(ctx, "a")
	c.Invalidate(ctx, "never-read")
	if src.loads != 1 {
		t.Fatalf("invalidations loaded: %d loads", src.loads)
	}
	if v, _, _, _ := c.Get(ctx, "a"); v != "2" {
		t.Fatalf("after invalidation: %q", v)
	}
	if _, found, _, err := c.Get(ctx, "never-read"); found || err != nil {
		t.Fatalf("placeholder answered: %v %v", found, err)
	}
	c.Get(ctx, "a")
	c.Get(ctx, "never-read")
	if src.loads != 3 {
		t.Fatalf("%d loads, want 3 (cached after reload, misses cached too)", src.loads)
	}
}

func TestStaleAnswerWhileTheStoreIsDown(t *testing.T) {
	src := &source{data: map[string]string{"a": "1"}}
	c := newCache(t, src, readcache.Options[string]{})
	ctx := context.Background()
	c.Get(ctx, "a")
	src.mu.Lock()
	src.down = true
	src.mu.Unlock()
	c.Invalidate(ctx, "a") // a write elsewhere: the next read must try the store
	v, found, stale, err := c.Get(ctx, "a")
	if err != nil || !found || !stale || v != "1" {
		t.Fatalf("store down: %q found=%v stale=%v %v", v, found, stale, err)
	}
	if _, _, _, err := c.Get(ctx, "b"); err == nil {
		t.Fatal("nothing cached and the store down: want an error")
	}
	c.Get(ctx, "b") // the breaker opens after two failures
	loads := src.loads
	if _, _, stale, _ := c.Get(ctx, "a"); !stale || src.loads != loads {
		t.Fatalf("breaker open: stale=%v, loads %d→%d (want a stale answer without trying)", stale, loads, src.loads)
	}
	if _, _, _, err := c.Get(ctx, "b"); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("breaker open, nothing cached: %v", err)
	}
}

func TestPatchUpdatesInPlaceAndTurnsACachedMissIntoAPlaceholder(t *testing.T) {
	src := &source{data: map[string]string{"a": "1"}}
	c := newCache(t, src, readcache.Options[string]{})
	ctx := context.Background()
	c.Get(ctx, "a")
	c.Get(ctx, "b") // cached as missing
	c.Patch("a", func(v string) (string, bool) { return v + "+", true })
	src.set("b", "new")
	c.Patch("b", func(v string) (string, bool) { t.Fatal("patched a cached miss"); return v, true })
	loads := src.loads
	if v, _, _, _ := c.Get(ctx, "a"); v != "1+" || src.loads != loads {
		t.Fatalf("patched: %q (loads %d→%d)", v, loads, src.loads)
	}
	if v, found, _, _ := c.Get(ctx, "b"); !found || v != "new" {
		t.Fatalf("after a patch of a cached miss: %q %v", v, found)
	}
}

func TestBounded(t *testing.T) {
	src := &source{data: map[string]string{}}
	c := newCache(t, src, readcache.Options[string]{Size: 10})
	for i := range 1000 {
		c.Get(context.Background(), string(rune('a'+i%26))+string(rune(i)))
	}
	if n := c.Len(); n > 10 {
		t.Fatalf("%d keys cached, bound 10", n)
	}
}
