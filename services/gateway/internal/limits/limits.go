// Package limits enforces per-key rate limits (token bucket) and daily
// quotas. Both are keyed by the key's lineage, so a rotated key and its
// successor share one budget during the overlap.
//
// The token bucket lives in this process: with N gateway replicas behind a
// balancer each allows the key's rate (documented in the README). The daily
// quota is shared: Sync adds this replica's counts to a store every replica
// uses and learns theirs, so the quota holds across replicas and restarts,
// overshooting by at most what the replicas admit between two syncs.
package limits

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Decision is the outcome of Allow.
type Decision struct {
	OK bool
	// Limit, Remaining and Reset feed the RateLimit-* headers.
	Limit     int
	Remaining int
	Reset     time.Duration
	// RetryAfter is set when refused.
	RetryAfter time.Duration
	// Quota is true when the daily quota (not the rate) refused the call.
	Quota bool
}

type bucket struct {
	lim   *rate.Limiter
	day   string
	used  int64 // every replica's count as of the last sync, plus pending
	quota int64
	// pending is this replica's count not yet added to the shared store.
	pending int64
}

// UsageStore holds the daily usage every replica shares.
type UsageStore interface {
	// AddUsage adds deltas to day's usage and returns the totals for
	// lineages.
	AddUsage(ctx context.Context, day time.Time, deltas map[string]int64, lineages []string) (map[string]int64, error)
}

// Limiter holds the buckets.
type Limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

// New returns a limiter.
func New() *Limiter { return &Limiter{buckets: map[string]*bucket{}, now: time.Now} }

// Allow takes one request from lineage's budget.
func (l *Limiter) Allow(lineage string, perSec float64, burst int, dailyQuota int64) Decision {
	now := l.now()
	day := now.UTC().Format("2006-01-02")
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[lineage]
	if b == nil || b.lim.Limit() != rate.Limit(perSec) || b.lim.Burst() != burst {
		nb := &bucket{lim: rate.NewLimiter(rate.Limit(perSec), burst), day: day}
		if b != nil {
			nb.used, nb.day, nb.pending = b.used, b.day, b.pending
		}
		b = nb
		l.buckets[lineage] = b
	}
	b.quota = dailyQuota
	if b.day != day {
		b.day, b.used, b.pending = day, 0, 0
	}
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	if dailyQuota > 0 && b.used >= dailyQuota {
		return Decision{Limit: int(dailyQuota), Reset: midnight.Sub(now), RetryAfter: midnight.Sub(now), Quota: true}
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return Decision{Limit: burst, Remaining: 0, Reset: d, RetryAfter: d}
	}
	b.used++
	b.pending++
	return Decision{OK: true, Limit: burst, Remaining: int(b.lim.TokensAt(now)), Reset: time.Duration(float64(time.Second) / perSec)}
}

// Sync adds the counts taken since the last sync to store and refreshes
// every lineage's daily usage from it. If the store fails, the counts stay
// pending for the next sync: none is lost.
func (l *Limiter) Sync(ctx context.Context, store UsageStore) error {
	now := l.now().UTC()
	day := now.Format("2006-01-02")
	deltas := map[string]int64{}
	var lineages []string
	l.mu.Lock()
	for id, b := range l.buckets {
		if b.day != day {
			continue // yesterday's counts no longer matter
		}
		lineages = append(lineages, id)
		if b.pending > 0 {
			deltas[id] = b.pending
			b.pending = 0
		}
	}
	l.mu.Unlock()
	if len(lineages) == 0 {
		return nil
	}
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	totals, err := store.AddUsage(ctx, midnight, deltas, lineages)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range lineages {
		b := l.buckets[id]
		if b == nil || b.day != day {
			continue
		}
		if err != nil {
			b.pending += deltas[id]
			continue
		}
		// What the store counts (ours included) plus what we took since.
		b.used = totals[id] + b.pending
	}
	return err
}
