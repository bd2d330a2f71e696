package api

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-bureau/strata/pkg/httpserver"
	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Caller is an authenticated partner key.
type Caller struct {
	PartnerID string
	KeyID     string
	Scopes    []string
	ClientIP  string
}

type callerKey struct{}

// insufficientScope is the 403 for a key without the scope need names.
func insufficientScope(need string) *Problem {
	return problem(http.StatusForbidden, "insufficient-scope", "this API key lacks the scope "+need)
}

func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// requireScope returns 403 unless the key holds scope.
func requireScope(ctx context.Context, scope apikey.Scope) (Caller, error) {
	c := callerFrom(ctx)
	if !scope.In(c.Scopes) {
		return c, insufficientScope(string(scope))
	}
	return c, nil
}

type cached struct {
	key     store.Key
	fetched time.Time
}

// KeyAuth authenticates X-Api-Key on /v1/ and applies the key's limits.
// Failing costs nothing: a source over its failure budget (Failures) or a
// key id recently found unknown (a short negative cache) is refused
// before any database work, and key lookups run at most MaxLookups at a
// time (limits.Lookups, as the OAuth2 issuer's client lookups).
type KeyAuth struct {
	Store   *store.Store
	Pepper  []byte
	Limiter *limits.Limiter
	Logger  *slog.Logger
	// CacheTTL bounds how stale a key's record may be (revocations through
	// this gateway apply at once; through another replica within the TTL).
	CacheTTL time.Duration
	// Proxies may tell the client's address in X-Forwarded-For.
	Proxies Proxies
	// Failures limits failed authentications per client address (nil: none).
	Failures *limits.Failures
	// NegativeTTL is how long an unknown key id is answered 401 without a
	// lookup (default 30s).
	NegativeTTL time.Duration
	// MaxLookups bounds concurrent key lookups in the database (default 16).
	MaxLookups int
	// Refusals, when set, counts 429s of the rate limit and the daily
	// quota by partner and reason (rate_limited, quota_exceeded).
	Refusals metric.Int64Counter

	mu      sync.Mutex
	cache   map[string]cached
	used    map[string]time.Time
	lookups *limits.Lookups
}

// Forget drops a key from the cache (after a revocation or rotation).
func (k *KeyAuth) Forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, id)
}

// errSourceBlocked: the client address used up its failures; no lookup.
var errSourceBlocked = errors.New("source blocked")

func (k *KeyAuth) init() {
	if k.cache == nil {
		k.cache, k.used = map[string]cached{}, map[string]time.Time{}
		k.lookups = limits.NewLookups(k.MaxLookups, k.NegativeTTL)
	}
}

// lookup returns the key with id. A source over its failure budget gets
// no database work: only a key this gateway has already verified, presented
// with its secret (secretHash matches), is looked up for it, so a partner
// keeps working while someone behind the same address fails.
func (k *KeyAuth) lookup(ctx context.Context, id string, secretHash []byte, blocked bool) (store.Key, error) {
	k.mu.Lock()
	k.init()
	c, ok := k.cache[id]
	k.mu.Unlock()
	if blocked && (!ok || !hmac.Equal(c.key.SecretHash, secretHash)) {
		return store.Key{}, errSourceBlocked
	}
	if ok && time.Since(c.fetched) < k.CacheTTL {
		return c.key, nil
	}
	key, err := limits.Lookup(ctx, k.lookups, id, store.ErrNotFound, func(ctx context.Context) (store.Key, error) {
		return k.Store.GetKey(ctx, id)
	})
	if err != nil {
		return key, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) > 100_000 {
		clear(k.cache)
	}
	k.cache[id] = cached{key: key, fetched: time.Now()}
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

// fail records a failed authentication of ip and answers p.
func (k *KeyAuth) fail(w http.ResponseWriter, ip string, p *Problem) {
	if k.Failures != nil {
		k.Failures.Fail(ip)
	}
	writeProblem(w, p)
}

// Middleware authenticates every /v1/ request.
func (k *KeyAuth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			next.ServeHTTP(w, r)
			return
		}
		ip, err := k.Proxies.ClientIP(r)
		if err != nil {
			writeProblem(w, invalid(err.Error()))
			return
		}
		key, ok := k.authenticate(w, r, ip)
		if !ok {
			return
		}
		// The access-log line and the server span name the partner (never
		// the key).
		httpserver.Note(r.Context(), "partner", key.PartnerID)
		if p := checkForwarded(r); p != nil {
			writeProblem(w, p)
			return
		}
		if !k.admit(w, r, key) {
			return
		}
		k.mu.Lock()
		k.used[key.ID] = time.Now()
		k.mu.Unlock()
		ctx := context.WithValue(r.Context(), callerKey{}, Caller{PartnerID: key.PartnerID, KeyID: key.ID, Scopes: key.Scopes, ClientIP: ip})
		// Every call to a base names the key's partner and the client's
		// address (pkg/origin: x-partner-id, x-client-ip), once, so a base
		// can enforce per-partner rules and key per-source limits on both.
		ctx = origin.Outgoing(ctx, origin.Origin{PartnerID: key.PartnerID, ClientIP: ip})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticate returns the valid, unexpired, unrevoked key X-Api-Key
// names; when there is none it has answered the request (401, 429 for a
// source over its failure budget, 503 when the key store cannot answer).
func (k *KeyAuth) authenticate(w http.ResponseWriter, r *http.Request, ip string) (store.Key, bool) {
	var retry time.Duration
	blocked := false
	if k.Failures != nil {
		retry, blocked = k.Failures.Blocked(ip)
	}
	raw := r.Header.Get("X-Api-Key")
	if raw == "" {
		k.fail(w, ip, problem(http.StatusUnauthorized, "missing-api-key", "send your API key in the X-Api-Key header"))
		return store.Key{}, false
	}
	parsed, err := apikey.Parse(raw)
	if err != nil || len(r.Header.Values("X-Api-Key")) > 1 {
		k.fail(w, ip, problem(http.StatusUnauthorized, "malformed-api-key", "the X-Api-Key value is not a Strata API key (check for a typo)"))
		return store.Key{}, false
	}
	secretHash := apikey.Hash(k.Pepper, parsed.Secret)
	key, err := k.lookup(r.Context(), parsed.ID, secretHash, blocked)
	switch {
	case errors.Is(err, errSourceBlocked):
		p := problem(http.StatusTooManyRequests, "too-many-failures", "too many failed authentications from this address; retry later")
		p.retryAfter = retry
		writeProblem(w, p)
	case errors.Is(err, store.ErrNotFound):
		k.fail(w, ip, errBadKey)
	case err != nil: // limits.ErrLookupsBusy or the store's failure
		writeProblem(w, logMasked(r.Context(), k.Logger, unavailable("the key store"), fmt.Errorf("key lookup: %w", err)))
	case !hmac.Equal(secretHash, key.SecretHash),
		key.RevokedAt != nil, key.ExpiresAt != nil && !time.Now().Before(*key.ExpiresAt):
		k.fail(w, ip, errBadKey)
	default:
		return key, true
	}
	return store.Key{}, false
}

// admit applies the key's rate limit and daily quota, with the RateLimit
// headers; a refusal is answered 429 with Retry-After (and counted).
func (k *KeyAuth) admit(w http.ResponseWriter, r *http.Request, key store.Key) bool {
	d := k.Limiter.Allow(key.LineageID, key.RatePerSec, key.Burst, key.DailyQuota)
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(int(d.Reset.Seconds()+0.999)))
	if d.OK {
		return true
	}
	kind, detail := "rate-limited", fmt.Sprintf("rate limit of %d requests reached", d.Limit)
	if d.Quota {
		kind, detail = "quota-exceeded", fmt.Sprintf("daily quota of %d requests used up", d.Limit)
	}
	if k.Refusals != nil {
		k.Refusals.Add(r.Context(), 1, metric.WithAttributes(attribute.String("partner", key.PartnerID),
			attribute.String("reason", strings.ReplaceAll(kind, "-", "_"))))
	}
	p := problem(http.StatusTooManyRequests, kind, detail)
	p.retryAfter = d.RetryAfter
	writeProblem(w, p)
	return false
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
