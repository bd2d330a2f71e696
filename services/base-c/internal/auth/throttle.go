package auth

import (
	"math"
	"sync"
	"time"
)

// ipLimiter counts failures per source (partner and client address) in
// fixed windows. It holds at most
// maxIPs addresses; beyond that it starts a fresh window for everyone, so a
// flood of spoofed addresses costs bounded memory.
type ipLimiter struct {
	limit  int
	window time.Duration

	mu    sync.Mutex
	start time.Time
	fails map[string]int
}

const maxIPs = 100_000

// throttle slows down one (account, source) pair after it fails: delays
// that grow with its failures, and a count that decays on its own.
type throttle struct {
	free            float64
	base, max, half time.Duration

	mu      sync.Mutex
	entries map[string]*throttled
}

type throttled struct {
	fails float64
	at    time.Time // of the last failure
	until time.Time // no attempt before
}

func newThrottle(free int, base, maxDelay, halfLife time.Duration) *throttle {
	return &throttle{free: float64(free), base: base, max: maxDelay, half: halfLife, entries: map[string]*throttled{}}
}

func (t *throttle) decayed(e *throttled, now time.Time) float64 {
	return e.fails * math.Pow(0.5, float64(now.Sub(e.at))/float64(t.half))
}

func (t *throttle) waiting(who string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[who]
	return e != nil && now.Before(e.until)
}

func (t *throttle) fail(who string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[who]
	if e == nil {
		if len(t.entries) >= maxIPs {
			// Forget the pairs that have cooled down; if none has, all.
			for k, v := range t.entries {
				if t.decayed(v, now) < 1 && !now.Before(v.until) {
					delete(t.entries, k)
				}
			}
			if len(t.entries) >= maxIPs {
				clear(t.entries)
			}
		}
		e = &throttled{}
		t.entries[who] = e
	} else {
		e.fails = t.decayed(e, now)
	}
	e.fails++
	e.at = now
	if over := e.fails - t.free; over > 0 {
		d := t.base
		for i := 1.0; i < over && d < t.max; i++ {
			d *= 2
		}
		e.until = now.Add(min(d, t.max))
	}
}

func newIPLimiter(limit int, window time.Duration) *ipLimiter {
	return &ipLimiter{limit: limit, window: window, fails: map[string]int{}}
}

func (l *ipLimiter) roll(now time.Time) {
	if now.Sub(l.start) >= l.window || len(l.fails) >= maxIPs {
		l.start = now
		clear(l.fails)
	}
}

func (l *ipLimiter) blocked(ip string, now time.Time) bool {
	if ip == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	return l.fails[ip] >= l.limit
}

func (l *ipLimiter) fail(ip string, now time.Time) {
	if ip == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	l.fails[ip]++
}
