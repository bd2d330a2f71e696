package limits

import "sync"

// Concurrency caps calls in flight in total and per key (a partner), so one
// key's slow or expensive calls leave room for the others: a key gets at
// most perKey of the total slots. It never waits: a call over either cap is
// refused at once, and the caller answers 429 (a key over its share) or 503
// (everything full).
type Concurrency struct {
	total, perKey int

	mu    sync.Mutex
	inUse int
	byKey map[string]int
}

// NewConcurrency allows total calls at once, at most perKey of them per key.
func NewConcurrency(total, perKey int) *Concurrency {
	if perKey <= 0 || perKey > total {
		perKey = total
	}
	return &Concurrency{total: total, perKey: perKey, byKey: map[string]int{}}
}

// Acquire takes a slot for key. ok is false when the key has its share
// (keyFull) or every slot is taken; release must be called once when ok.
func (c *Concurrency) Acquire(key string) (release func(), keyFull, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKey[key] >= c.perKey {
		return nil, true, false
	}
	if c.inUse >= c.total {
		return nil, false, false
	}
	c.inUse++
	c.byKey[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.inUse--
			if c.byKey[key]--; c.byKey[key] <= 0 {
				delete(c.byKey, key)
			}
		})
	}, false, true
}
