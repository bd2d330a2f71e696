package api

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Scopes a key may hold.
// audit:read (every partner's entries, verification, subject reports) is for
// bureau staff and regulators; audit:own shows a partner its own entries.
var Scopes = []string{"base-a:grant", "base-a:read", "base-b:read", "base-c:read", "audit:own", "audit:read", "admin"}

// Caller is an authenticated partner key.
type Caller struct {
	PartnerID string
	KeyID     string
	Scopes    []string
	ClientIP  string
}

type callerKey struct{}

func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// requireScope returns 403 unless the key holds scope.
func requireScope(ctx context.Context, scope string) (Caller, error) {
	c := callerFrom(ctx)
	if !slices.Contains(c.Scopes, scope) {
		return c, problem(http.StatusForbidden, "insufficient-scope", "this API key lacks the scope "+scope)
	}
	return c, nil
}

type cached struct {
	key     store.Key
	fetched time.Time
}

// KeyAuth authenticates X-Api-Key on /v1/ and applies the key's limits.
type KeyAuth struct {
	Store   *store.Store
	Pepper  []byte
	Limiter *limits.Limiter
	Logger  *slog.Logger
	// CacheTTL bounds how stale a key's record may be (revocations through
	// this gateway apply at once; through another replica within the TTL).
	CacheTTL time.Duration

	mu    sync.Mutex
	cache map[string]cached
	used  map[string]time.Time
}

// Forget drops a key from the cache (after a revocation or rotation).
func (k *KeyAuth) Forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, id)
}

func (k *KeyAuth) lookup(ctx context.Context, id string) (store.Key, error) {
	k.mu.Lock()
	if k.cache == nil {
		k.cache, k.used = map[string]cached{}, map[string]time.Time{}
	}
	c, ok := k.cache[id]
	k.mu.Unlock()
	if ok && time.Since(c.fetched) < k.CacheTTL {
		return c.key, nil
	}
	key, err := k.Store.GetKey(ctx, id)
	if err != nil {
		return key, err
	}
	k.mu.Lock()
	if len(k.cache) > 100_000 {
		clear(k.cache)
	}
	k.cache[id] = cached{key: key, fetched: time.Now()}
	k.mu.Unlock()
	return key, nil
}

// FlushLastUsed writes last_used_at for keys used since the last call.
func (k *KeyAuth) FlushLastUsed(ctx context.Context) {
	k.mu.Lock()
	used := k.used
	k.used = map[string]time.Time{}
	k.mu.Unlock()
	if len(used) > 0 {
		if err := k.Store.TouchKeys(ctx, used); err != nil {
			k.Logger.Warn("could not record last_used_at", "err", err)
		}
	}
}

var errBadKey = problem(http.StatusUnauthorized, "invalid-api-key", "the API key is not valid")

// Middleware authenticates every /v1/ request.
func (k *KeyAuth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			next.ServeHTTP(w, r)
			return
		}
		raw := r.Header.Get("X-Api-Key")
		if raw == "" {
			writeProblem(w, problem(http.StatusUnauthorized, "missing-api-key", "send your API key in the X-Api-Key header"))
			return
		}
		parsed, err := apikey.Parse(raw)
		if err != nil {
			writeProblem(w, problem(http.StatusUnauthorized, "malformed-api-key", "the X-Api-Key value is not a Strata API key (check for a typo)"))
			return
		}
		key, err := k.lookup(r.Context(), parsed.ID)
		now := time.Now()
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeProblem(w, errBadKey)
			return
		case err != nil:
			k.Logger.ErrorContext(r.Context(), "key lookup failed", "err", err)
			writeProblem(w, unavailable("the key store"))
			return
		case !hmac.Equal(apikey.Hash(k.Pepper, parsed.Secret), key.SecretHash),
			key.RevokedAt != nil, key.ExpiresAt != nil && !now.Before(*key.ExpiresAt):
			writeProblem(w, errBadKey)
			return
		}
		d := k.Limiter.Allow(key.LineageID, key.RatePerSec, key.Burst, key.DailyQuota)
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(int(d.Reset.Seconds()+0.999)))
		if !d.OK {
			kind, detail := "rate-limited", fmt.Sprintf("rate limit of %d requests reached", d.Limit)
			if d.Quota {
				kind, detail = "quota-exceeded", fmt.Sprintf("daily quota of %d requests used up", d.Limit)
			}
			p := problem(http.StatusTooManyRequests, kind, detail)
			p.retryAfter = d.RetryAfter
			writeProblem(w, p)
			return
		}
		k.mu.Lock()
		k.used[key.ID] = now
		k.mu.Unlock()
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		ctx := context.WithValue(r.Context(), callerKey{}, Caller{PartnerID: key.PartnerID, KeyID: key.ID, Scopes: key.Scopes, ClientIP: ip})
		// Every call to a base names the key's partner, so a base can
		// enforce per-partner rules from the caller's context.
		ctx = metadata.AppendToOutgoingContext(ctx, "x-partner-id", key.PartnerID)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Edge caps request bodies before anything reads them.
func Edge(maxBody int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			writeProblem(w, problem(http.StatusRequestEntityTooLarge, "payload-too-large", fmt.Sprintf("request bodies are limited to %d bytes", maxBody)))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}
