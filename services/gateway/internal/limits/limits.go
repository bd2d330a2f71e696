// Package limits enforces per-key rate limits (token bucket) and daily
// quotas. Both are keyed by the key's lineage, so a rotated key and its
// successor share one budget during the overlap. Counts live in this
// process: with N gateway replicas behind a balancer each enforces its
// share (documented in the README).
package limits

import (
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
	used  int64
	quota int64
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
			nb.used, nb.day = b.used, b.day
		}
		b = nb
		l.buckets[lineage] = b
	}
	b.quota = dailyQuota
	if b.day != day {
		b.day, b.used = day, 0
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
	return Decision{OK: true, Limit: burst, Remaining: int(b.lim.TokensAt(now)), Reset: time.Duration(float64(time.Second) / perSec)}
}
