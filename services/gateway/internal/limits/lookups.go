package limits

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Lookups guards the database lookups of credentials by id (API keys,
// OAuth2 clients) against floods of made-up ids: an id found unknown is
// refused without a lookup for a while, and only a few lookups run at
// once, a caller waiting at most a second for its turn. It remembers at
// most 100,000 unknown ids; past that it forgets them all (bounded memory,
// at worst one more lookup each).
type Lookups struct {
	slots       chan struct{}
	negativeTTL time.Duration

	mu      sync.Mutex
	unknown map[string]time.Time
}

const maxUnknown = 100_000

// ErrLookupsBusy is returned when no lookup slot freed within a second.
var ErrLookupsBusy = errors.New("credential lookups saturated")

// NewLookups runs at most max lookups at once (default 16) and refuses an
// id found unknown for negativeTTL (default 30 s).
func NewLookups(max int, negativeTTL time.Duration) *Lookups {
	if max <= 0 {
		max = 16
	}
	if negativeTTL <= 0 {
		negativeTTL = 30 * time.Second
	}
	return &Lookups{slots: make(chan struct{}, max), negativeTTL: negativeTTL, unknown: map[string]time.Time{}}
}

// Lookup returns find's answer for id. find returns unknown (errors.Is)
// when there is no such id; an id it answered so is answered unknown
// again, without calling find, for the negative TTL.
func Lookup[T any](ctx context.Context, l *Lookups, id string, unknown error, find func(context.Context) (T, error)) (T, error) {
	var none T
	l.mu.Lock()
	until, isUnknown := l.unknown[id]
	l.mu.Unlock()
	if isUnknown && time.Now().Before(until) {
		return none, unknown
	}
	wait := time.NewTimer(time.Second)
	defer wait.Stop()
	select {
	case l.slots <- struct{}{}:
	case <-wait.C:
		return none, ErrLookupsBusy
	case <-ctx.Done():
		return none, ctx.Err()
	}
	v, err := find(ctx)
	<-l.slots
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, unknown):
		if len(l.unknown) > maxUnknown {
			clear(l.unknown)
		}
		l.unknown[id] = time.Now().Add(l.negativeTTL)
	case err == nil:
		delete(l.unknown, id)
	}
	return v, err
}
