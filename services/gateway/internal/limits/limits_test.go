package limits

import (
	"testing"
	"time"
)

func TestRateQuotaAndSharedLineage(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 23, 59, 0, 0, time.UTC)
	l := New()
	l.now = func() time.Time { return now }
	for i := range 3 {
		if d := l.Allow("lineage-1", 1, 3, 1000); !d.OK {
			t.Fatalf("call %d refused within the burst", i)
		}
	}
	d := l.Allow("lineage-1", 1, 3, 1000)
	if d.OK || d.Quota || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("4th call: %+v", d)
	}
	// Another lineage has its own bucket.
	if !l.Allow("lineage-2", 1, 3, 1000).OK {
		t.Fatal("buckets are not per lineage")
	}
	// Quota: two calls a day.
	q := New()
	q.now = func() time.Time { return now }
	q.Allow("k", 100, 100, 2)
	q.Allow("k", 100, 100, 2)
	d = q.Allow("k", 100, 100, 2)
	if d.OK || !d.Quota || d.RetryAfter != time.Minute {
		t.Fatalf("quota: %+v", d)
	}
	// A new UTC day resets the quota.
	now = now.Add(2 * time.Minute)
	if !q.Allow("k", 100, 100, 2).OK {
		t.Fatal("quota not reset at midnight UTC")
	}
}
