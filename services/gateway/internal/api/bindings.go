package api

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Bindings caches, per partner, the OAuth2 client ids bound to it, which
// every Base B call carries (x-partner-oauth-clients) so Base B can refuse
// a token whose client belongs to another partner. Changes made through
// this replica apply at once; through another replica within TTL.
type Bindings struct {
	Store *store.Store
	TTL   time.Duration

	mu    sync.Mutex
	cache map[string]boundClients
}

type boundClients struct {
	list    string // comma-separated
	fetched time.Time
}

// Forget drops a partner's cached list (after a change).
func (b *Bindings) Forget(partnerID string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.cache, partnerID)
}

// Clients returns the partner's bound client ids, comma-separated.
func (b *Bindings) Clients(ctx context.Context, partnerID string) (string, error) {
	b.mu.Lock()
	if b.cache == nil {
		b.cache = map[string]boundClients{}
	}
	c, ok := b.cache[partnerID]
	b.mu.Unlock()
	if ok && time.Since(c.fetched) < b.TTL {
		return c.list, nil
	}
	bs, err := b.Store.OAuthClients(ctx, partnerID)
	if err != nil {
		return "", err
	}
	ids := make([]string, len(bs))
	for i, x := range bs {
		ids[i] = x.ClientID
	}
	list := strings.Join(ids, ",")
	b.mu.Lock()
	if len(b.cache) > 100_000 {
		clear(b.cache)
	}
	b.cache[partnerID] = boundClients{list: list, fetched: time.Now()}
	b.mu.Unlock()
	return list, nil
}
