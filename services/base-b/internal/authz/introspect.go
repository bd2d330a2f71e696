package authz

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// introspectorOptions: the verifier's settings (the issuer, Base B's
// client and its secret, the caches, the deadline), the endpoint found for
// them, the HTTP client and the clock.
type introspectorOptions struct {
	Config
	endpoint string
	client   *http.Client
	now      func() time.Time
}

// introspector asks the provider about opaque tokens (RFC 7662) and
// remembers its answers: active ones until the token's exp (at most ttl),
// refusals for negativeTTL, each cache bounded in size. Concurrent checks
// of one token make one request.
type introspector struct {
	o        introspectorOptions
	flight   singleflight.Group
	positive *ttlCache
	negative *ttlCache
}

func newIntrospector(o introspectorOptions) *introspector {
	return &introspector{o: o, positive: newTTLCache(o.CacheSize, o.now), negative: newTTLCache(o.CacheSize, o.now)}
}

// errRefused marks the provider's own verdict that a token is not valid,
// as opposed to a failure to ask.
type errRefused struct{ why string }

func (e errRefused) Error() string { return e.why }

func (in *introspector) check(ctx context.Context, raw string, m *Mapping) (Principal, error) {
	sum := sha256.Sum256([]byte(raw))
	key := string(sum[:])
	if p, ok := in.positive.get(key); ok {
		return p, nil
	}
	if _, ok := in.negative.get(key); ok {
		return Principal{}, fmt.Errorf("%w: refused recently", ErrInvalidToken)
	}
	res, err, _ := in.flight.Do(key, func() (any, error) {
		// Detached from the caller's cancellation (a caller hanging up is
		// not a provider failure), bounded by the provider deadline.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.o.Timeout)
		defer cancel()
		p, err := in.ask(rctx, raw, m)
		switch err.(type) {
		case nil:
			until := in.o.now().Add(in.o.CacheTTL)
			if p.Expiry.Before(until) {
				until = p.Expiry
			}
			in.positive.put(key, p, until)
		case errRefused:
			in.negative.put(key, Principal{}, in.o.now().Add(in.o.NegativeTTL))
		}
		return p, err
	})
	if err != nil {
		if _, ok := err.(errRefused); ok {
			return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
		}
		return Principal{}, fmt.Errorf("%w: introspection: %w", ErrProvider, err)
	}
	return res.(Principal), nil
}

func (in *introspector) ask(ctx context.Context, raw string, m *Mapping) (Principal, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.o.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Principal{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: both form-urlencoded inside the basic credentials.
	req.SetBasicAuth(url.QueryEscape(in.o.ClientID), url.QueryEscape(in.o.ClientSecret.Reveal()))
	resp, err := in.o.client.Do(req)
	if err != nil {
		return Principal{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Principal{}, err
	}
	if resp.StatusCode != http.StatusOK {
		// 401/403: Base B's own client credentials are wrong — a
		// configuration problem, never the caller's token.
		return Principal{}, fmt.Errorf("introspection endpoint answered %d", resp.StatusCode)
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		return Principal{}, fmt.Errorf("introspection answer: %w", err)
	}
	return in.principal(claims, m)
}

// principal applies the same rules to an introspection answer as to a JWT's
// claims; aud is checked when the provider states it (RFC 7662 makes it
// optional: the provider answered Base B's own authenticated client).
func (in *introspector) principal(claims map[string]any, m *Mapping) (Principal, error) {
	if active, _ := claims["active"].(bool); !active {
		return Principal{}, errRefused{"the provider reports the token inactive"}
	}
	if iss, ok := claims["iss"].(string); ok && strings.TrimRight(iss, "/") != strings.TrimRight(in.o.Issuer, "/") {
		return Principal{}, errRefused{"the token is from another issuer"}
	}
	exp, ok := claims["exp"].(float64)
	if !ok || exp <= 0 {
		return Principal{}, errRefused{"the introspection answer has no exp"}
	}
	expiry := time.Unix(int64(exp), 0)
	if !expiry.After(in.o.now()) {
		return Principal{}, errRefused{"the token has expired"}
	}
	if err := idTokenMarks(claims); err != nil {
		return Principal{}, errRefused{err.Error()}
	}
	if _, ok := claims["aud"]; !ok {
		claims["aud"] = m.Audiences[0]
	}
	p, err := m.principal(claims)
	if err != nil {
		return Principal{}, errRefused{err.Error()}
	}
	p.Expiry = expiry
	return p, nil
}

// ttlCache is a bounded map of principals with per-entry expiry.
type ttlCache struct {
	mu   sync.Mutex
	max  int
	now  func() time.Time
	data map[string]cacheEntry
}

type cacheEntry struct {
	p     Principal
	until time.Time
}

func newTTLCache(max int, now func() time.Time) *ttlCache {
	return &ttlCache{max: max, now: now, data: map[string]cacheEntry{}}
}

func (c *ttlCache) get(key string) (Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.data[key]
	if !ok {
		return Principal{}, false
	}
	if !c.now().Before(e.until) {
		delete(c.data, key)
		return Principal{}, false
	}
	return e.p, true
}

func (c *ttlCache) put(key string, p Principal, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.data[key]; !ok && len(c.data) >= c.max {
		now := c.now()
		for k, e := range c.data {
			if !now.Before(e.until) {
				delete(c.data, k)
			}
		}
		// Still full: drop an arbitrary eighth (map order is random).
		for k := range c.data {
			if len(c.data) < c.max-c.max/8 {
				break
			}
			delete(c.data, k)
		}
	}
	c.data[key] = cacheEntry{p: p, until: until}
}
