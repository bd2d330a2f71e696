package limits_test

import (
	"context"
	"testing"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
	"github.com/strata-bureau/strata/services/gateway/internal/store/storetest"
)

// Two replicas share one daily quota through the gateway's database, and a
// restarted replica remembers what was used; a failed sync loses no count.
func TestDailyQuotaIsSharedAcrossReplicasAndRestarts(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	st, pool := storetest.New(t)
	const quota = 10
	allow := func(l *limits.Limiter, n int) (ok int) {
		for range n {
			if l.Allow("lineage-1", 1000, 1000, quota).OK {
				ok++
			}
		}
		return ok
	}
	sync := func(l *limits.Limiter) {
		t.Helper()
		if err := l.Sync(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	a, b := limits.New(), limits.New()
	if got := allow(a, 6); got != 6 {
		t.Fatalf("replica A admitted %d of 6", got)
	}
	sync(a)
	b.Allow("lineage-2", 1000, 1000, quota) // B knows the lineage only after a first call
	if got := allow(b, 1); got != 1 {
		t.Fatal("replica B refused its first call")
	}
	sync(b) // B learns A's 6: 7 used
	if got := allow(b, 10); got != 3 {
		t.Fatalf("replica B admitted %d more, want 3 (quota 10, 7 used)", got)
	}
	sync(b)
	sync(a) // A learns B's 4
	if got := allow(a, 5); got != 0 {
		t.Fatalf("replica A admitted %d after the quota was used up elsewhere", got)
	}

	// A restarted replica refuses once it has synced.
	c := limits.New()
	c.Allow("lineage-1", 1000, 1000, quota)
	sync(c)
	if d := c.Allow("lineage-1", 1000, 1000, quota); d.OK || !d.Quota {
		t.Fatalf("restarted replica: %+v", d)
	}

	// A sync that fails keeps its counts for the next one.
	d := limits.New()
	if got := func() int {
		n := 0
		for range 3 {
			if d.Allow("lineage-3", 1000, 1000, quota).OK {
				n++
			}
		}
		return n
	}(); got != 3 {
		t.Fatal("lineage-3 refused")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Sync(cancelled, st); err == nil {
		t.Fatal("a sync with a cancelled context succeeded")
	}
	sync(d)
	var used int64
	if err := pool.QueryRow(ctx, `SELECT used FROM key_usage WHERE lineage_id = 'lineage-3'`).Scan(&used); err != nil || used != 3 {
		t.Fatalf("lineage-3 usage in the store: %d, %v (want 3)", used, err)
	}
}
