package authz_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-bureau/strata/services/base-b/internal/authz"
	"github.com/strata-bureau/strata/services/base-b/internal/oidctest"
)

// clock is a settable clock for Base B's side (the provider keeps real time).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Now()} }

// A provider whose client-credentials JWTs carry no scope, aud = the client
// id and typ JWT: permissions come from the client map.
func TestThirdPartyJWTWithoutScopes(t *testing.T) {
	t.Parallel()
	p := oidctest.StartOP(t, oidctest.OPOptions{TokenLifetime: time.Minute})
	p.AddClient("bank-a-app", "secret-a")
	p.AddClient("bank-c-app", "secret-c")
	clk := newClock()
	v := newVerifier(t, p.URL, authz.Options{Now: clk.Now, Config: authz.Config{Mapping: authz.Mapping{Audiences: []string{"bank-a-app", "bank-c-app"},
		TokenTypes: []string{"at+jwt", "JWT"}, ClientScopes: map[string][]string{"bank-a-app": {"base-b:read"}}}}})
	ctx := context.Background()

	tok := p.Token(t, "bank-a-app", "secret-a")
	pr, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if pr.ClientID != "bank-a-app" || !slices.Equal(pr.Scopes, []string{"base-b:read"}) {
		t.Fatalf("principal %+v", pr)
	}
	// A client without an entry gets no permission at all.
	if pr, err := v.Verify(ctx, p.Token(t, "bank-c-app", "secret-c")); err != nil || len(pr.Scopes) != 0 {
		t.Fatalf("unmapped client: %+v %v", pr, err)
	}
	// The same provider's ID token for the same client (aud = client id,
	// typ JWT, signed by the same key) is not an access token.
	if _, err := v.Verify(ctx, p.IDToken(t, "bank-a-app", tok)); err == nil {
		t.Fatal("ID token accepted as an access token")
	}
	// With the strict default typ (at+jwt only) even its access tokens are refused.
	strict := newVerifier(t, p.URL, authz.Options{Config: authz.Config{Mapping: authz.Mapping{Audiences: []string{"bank-a-app"}, ClientScopes: map[string][]string{"bank-a-app": {"base-b:read"}}}}})
	if _, err := strict.Verify(ctx, tok); err == nil {
		t.Fatal("typ JWT accepted although only at+jwt is configured")
	}

	// Outage: the cached keys verify until the token expires, then it fails closed.
	p.SetDown(true)
	for range 5 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("provider down: cached keys stopped working: %v", err)
		}
	}
	clk.Add(time.Minute + 31*time.Second) // past exp and the 30 s leeway
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Fatal("expired token accepted")
	}
}

// A provider issuing opaque tokens, checked by introspection.
func TestThirdPartyOpaqueTokensByIntrospection(t *testing.T) {
	t.Parallel()
	p := oidctest.StartOP(t, oidctest.OPOptions{Opaque: true, Audience: []string{"strata-base-b"}, Scopes: true, TokenLifetime: 10 * time.Minute})
	p.AddClient("bank-a-app", "secret-a")
	p.AddClient("strata-base-b", "introspect-secret") // Base B's own client (a ZITADEL API app)
	clk := newClock()
	v := newVerifier(t, p.URL, authz.Options{Now: clk.Now, Config: authz.Config{ClientID: "strata-base-b", ClientSecret: "introspect-secret",
		CacheTTL: time.Hour, NegativeTTL: 30 * time.Second}})
	ctx := context.Background()

	tok := p.Token(t, "bank-a-app", "secret-a", "base-b:read")
	if _, isJWT := jwtLike(tok); isJWT {
		t.Fatalf("the provider issued a JWT, not an opaque token: %s", tok)
	}
	pr, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if pr.ClientID != "bank-a-app" || !slices.Contains(pr.Scopes, "base-b:read") {
		t.Fatalf("principal %+v", pr)
	}
	// Cached: no second request.
	n := p.Introspections.Load()
	for range 10 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if p.Introspections.Load() != n {
		t.Fatalf("introspected %d more times; the answer was not cached", p.Introspections.Load()-n)
	}

	// Revoked before first use: the provider answers active:false; the
	// refusal is remembered (no request on the second try).
	revoked := p.Token(t, "bank-a-app", "secret-a", "base-b:read")
	p.Revoke(t, "bank-a-app", "secret-a", revoked)
	if _, err := v.Verify(ctx, revoked); !errors.Is(err, authz.ErrInvalidToken) {
		t.Fatalf("revoked token: %v", err)
	}
	n = p.Introspections.Load()
	if _, err := v.Verify(ctx, revoked); !errors.Is(err, authz.ErrInvalidToken) || p.Introspections.Load() != n {
		t.Fatalf("refusal not cached: %v, %d requests", err, p.Introspections.Load()-n)
	}
	// Garbage is refused by the provider too (and never taken for a JWT).
	if _, err := v.Verify(ctx, "not-a-token-at-all"); !errors.Is(err, authz.ErrInvalidToken) {
		t.Fatalf("garbage: %v", err)
	}
	// Revoked after it was cached: refused once the cached answer ends.
	live := p.Token(t, "bank-a-app", "secret-a", "base-b:read")
	if _, err := v.Verify(ctx, live); err != nil {
		t.Fatal(err)
	}
	p.Revoke(t, "bank-a-app", "secret-a", live)
	clk.Add(time.Hour + time.Second)
	if _, err := v.Verify(ctx, live); !errors.Is(err, authz.ErrInvalidToken) {
		t.Fatalf("revoked token still accepted after the cache TTL: %v", err)
	}

	// Outage: a cached answer works until its token's exp, then fails closed.
	clk = newClock()
	v = newVerifier(t, p.URL, authz.Options{Now: clk.Now, Config: authz.Config{ClientID: "strata-base-b", ClientSecret: "introspect-secret", CacheTTL: time.Hour}})
	cached := p.Token(t, "bank-a-app", "secret-a", "base-b:read")
	uncached := p.Token(t, "bank-a-app", "secret-a", "base-b:read")
	if _, err := v.Verify(ctx, cached); err != nil {
		t.Fatal(err)
	}
	p.SetDown(true)
	for range 5 {
		if _, err := v.Verify(ctx, cached); err != nil {
			t.Fatalf("cached answer stopped working during the outage: %v", err)
		}
	}
	// Not cached: cannot be checked, fails closed as a provider failure
	// (not a refusal: it is not remembered as one).
	for range 5 {
		if _, err := v.Verify(ctx, uncached); !errors.Is(err, authz.ErrProvider) {
			t.Fatalf("uncached token during the outage: %v", err)
		}
	}
	// The breaker opened after 3 failures: the provider saw no more.
	n = p.Introspections.Load()
	if _, err := v.Verify(ctx, uncached); !errors.Is(err, authz.ErrProvider) || p.Introspections.Load() != n {
		t.Fatalf("breaker did not open: %v", err)
	}
	clk.Add(10*time.Minute + time.Second) // past the token's exp
	if _, err := v.Verify(ctx, cached); err == nil {
		t.Fatal("cached answer outlived its token's exp")
	}
}

// A token the provider itself considers expired is reported active:false.
func TestThirdPartyExpiredOpaqueToken(t *testing.T) {
	t.Parallel()
	p := oidctest.StartOP(t, oidctest.OPOptions{Opaque: true, Audience: []string{"strata-base-b"}, Scopes: true, TokenLifetime: 2 * time.Second})
	p.AddClient("bank-a-app", "secret-a")
	p.AddClient("strata-base-b", "introspect-secret")
	v := newVerifier(t, p.URL, authz.Options{Config: authz.Config{ClientID: "strata-base-b", ClientSecret: "introspect-secret"}})
	tok := p.Token(t, "bank-a-app", "secret-a", "base-b:read")
	time.Sleep(2100 * time.Millisecond)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, authz.ErrInvalidToken) {
		t.Fatalf("expired opaque token: %v", err)
	}
}

// Base B's own introspection credentials are checked by the provider.
func TestIntrospectionNeedsBaseBsCredentials(t *testing.T) {
	t.Parallel()
	p := oidctest.StartOP(t, oidctest.OPOptions{Opaque: true, Audience: []string{"strata-base-b"}, Scopes: true})
	p.AddClient("bank-a-app", "secret-a")
	p.AddClient("strata-base-b", "introspect-secret")
	v := newVerifier(t, p.URL, authz.Options{Config: authz.Config{ClientID: "strata-base-b", ClientSecret: "wrong"}})
	if _, err := v.Verify(context.Background(), p.Token(t, "bank-a-app", "secret-a", "base-b:read")); err == nil {
		t.Fatal("accepted with wrong introspection credentials")
	}
	// Introspection off: an opaque token is simply not a JWT.
	off := newVerifier(t, p.URL, authz.Options{Config: authz.Config{Introspection: authz.IntrospectOff, ClientID: "strata-base-b", ClientSecret: "introspect-secret"}})
	if _, err := off.Verify(context.Background(), p.Token(t, "bank-a-app", "secret-a", "base-b:read")); !errors.Is(err, authz.ErrInvalidToken) {
		t.Fatalf("introspection off: %v", err)
	}
}

func jwtLike(s string) (string, bool) {
	n := 0
	for _, c := range s {
		if c == '.' {
			n++
		}
	}
	return s, n == 2
}
