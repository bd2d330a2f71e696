package limits

import (
	"sync"
	"time"

	"github.com/strata-bureau/strata/pkg/origin"
)

// Failures limits failed attempts per source (a client address, or an
// account and a source): each failure takes a token from the source's
// bucket, which refills at a steady rate, so counters decay on their own
// and a source that stops failing is soon free again. It holds at most
// maxSources sources; past that it forgets them all (a flood of forged
// sources costs bounded memory and at worst a fresh budget).
type Failures struct {
	burst  float64
	refill float64 // tokens per second
	now    func() time.Time

	mu      sync.Mutex
	sources map[string]*failBucket
}

type failBucket struct {
	tokens float64
	at     time.Time
}

const maxSources = 100_000

// NewFailures allows burst failures per source, refilled at perMinute.
func NewFailures(burst int, perMinute float64) *Failures {
	return &Failures{burst: float64(burst), refill: perMinute / 60, now: time.Now, sources: map[string]*failBucket{}}
}

func (f *Failures) bucket(src string, now time.Time) *failBucket {
	// An IPv6 client counts as its /64 (origin.SourceKey).
	src = origin.SourceKey(src)
	b := f.sources[src]
	if b == nil {
		if len(f.sources) >= maxSources {
			clear(f.sources)
		}
		b = &failBucket{tokens: f.burst, at: now}
		f.sources[src] = b
		return b
	}
	b.tokens = min(f.burst, b.tokens+now.Sub(b.at).Seconds()*f.refill)
	b.at = now
	return b
}

// Blocked reports whether src has used up its failures, and when it may
// try again.
func (f *Failures) Blocked(src string) (time.Duration, bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bucket(src, now)
	if b.tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - b.tokens) / f.refill * float64(time.Second)), true
}

// Fail records one failure of src.
func (f *Failures) Fail(src string) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bucket(src, now)
	b.tokens = max(0, b.tokens-1)
}
