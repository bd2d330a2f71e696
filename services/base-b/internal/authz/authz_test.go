package authz_test

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/services/base-b/internal/authz"
	"github.com/strata-bureau/strata/services/base-b/internal/oidctest"
)

const aud = "strata-base-b"

// newVerifier verifies the tokens of the provider at issuer with o: each
// setting o leaves zero at its default (config.Defaults; audience aud), behind a breaker
// that opens after three failures unless o brings its own.
func newVerifier(t *testing.T, issuer string, o authz.Options) *authz.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	o.Issuer = issuer
	if err := config.Defaults(ctx, &o.Config); err != nil {
		t.Fatal(err)
	}
	if o.Breaker == nil {
		o.Breaker = breaker.Standalone(breaker.Config{Name: "oidc", ConsecutiveFailures: 3, OpenFor: time.Hour})
	}
	v, err := authz.NewVerifier(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestTokensAreRejectedForEveryFlaw(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	other := oidctest.New(t, jose.RS256)
	v := newVerifier(t, is.URL, authz.Options{})
	ctx := context.Background()
	good := oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read"}

	if p, err := v.Verify(ctx, is.Token(t, good)); err != nil || p.Subject != "bank-a" || p.Scopes[0] != "base-b:read" {
		t.Fatalf("valid token refused: %+v %v", p, err)
	}

	valid := is.Token(t, good)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64([]byte(`{"iss":"`+is.URL+`","sub":"bank-a","aud":"`+aud+`","scope":"base-b:read base-b:export","exp":9999999999}`)) + "." + parts[2]
	none := b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	// HS256 "signed" with the issuer's public key as the HMAC secret: the
	// classic algorithm-confusion attack.
	pubDER, _ := x509.MarshalPKIXPublicKey(is.PublicKey().(*rsa.PublicKey))
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsHeader := b64([]byte(`{"alg":"HS256","typ":"at+jwt"}`))
	mac := hmac.New(sha256.New, pubPEM)
	mac.Write([]byte(hsHeader + "." + parts[1]))
	hs256 := hsHeader + "." + parts[1] + "." + b64(mac.Sum(nil))

	cases := map[string]string{
		"expired":          is.Token(t, oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read", Expiry: time.Now().Add(-2 * time.Minute)}),
		"not yet valid":    is.Token(t, oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read", NotBefore: time.Now().Add(time.Hour)}),
		"wrong audience":   is.Token(t, oidctest.Claims{Subject: "bank-a", Audience: "someone-else", Scope: "base-b:read"}),
		"wrong issuer":     is.Token(t, oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read", Issuer: "https://evil.example"}),
		"other issuer":     other.Token(t, good),
		"unknown kid":      is.TokenWithUnpublishedKey(t, good),
		"alg none":         none,
		"HS256 public key": hs256,
		"tampered payload": tampered,
		"garbage":          "not.a.jwt",
		"empty":            "",
	}
	for name, tok := range cases {
		if _, err := v.Verify(ctx, tok); err == nil {
			t.Errorf("%s: token accepted", name)
		}
	}
	// A token just past expiry is still inside the leeway.
	if _, err := v.Verify(ctx, is.Token(t, oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read", Expiry: time.Now().Add(-5 * time.Second)})); err != nil {
		t.Errorf("token 5s past expiry refused despite the 30s leeway: %v", err)
	}
}

// TOKEN_LEEWAY=0 is no leeway (it used to mean the default 30 s, as any
// zero setting did): a token 5 s past its expiry is refused.
func TestZeroLeewayIsNoLeeway(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	c := authz.Config{Issuer: is.URL}
	if err := config.Defaults(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	c.Leeway = 0
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := authz.NewVerifier(ctx, authz.Options{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	late := is.Token(t, oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read", Expiry: time.Now().Add(-5 * time.Second)})
	if _, err := v.Verify(ctx, late); err == nil {
		t.Fatal("a token 5 s past its expiry was accepted with no leeway")
	}
	if _, err := v.Verify(ctx, is.Token(t, oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read"})); err != nil {
		t.Fatalf("a valid token was refused: %v", err)
	}
}

func TestAnyConformingIssuerWorksWhenConfigured(t *testing.T) {
	t.Parallel()
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
		is := oidctest.New(t, alg)
		v := newVerifier(t, is.URL, authz.Options{})
		if _, err := v.Verify(context.Background(), is.Token(t, oidctest.Claims{Subject: "s", Audience: aud, Scope: "base-b:read"})); err != nil {
			t.Errorf("%s issuer: %v", alg, err)
		}
	}
}

func TestProviderOutageKeepsCachedKeys(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	v := newVerifier(t, is.URL, authz.Options{Breaker: breaker.Standalone(breaker.Config{Name: "oidc", ConsecutiveFailures: 3, OpenFor: 200 * time.Millisecond})})
	ctx := context.Background()
	claims := oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read"}
	if _, err := v.Verify(ctx, is.Token(t, claims)); err != nil {
		t.Fatal(err)
	}
	fetches := is.JWKSFetches.Load()
	is.SetDown(true)
	for range 20 {
		if _, err := v.Verify(ctx, is.Token(t, claims)); err != nil {
			t.Fatalf("cached key stopped working while the provider is down: %v", err)
		}
	}
	// A token signed with a key the cache does not know fails cleanly.
	start := time.Now()
	if _, err := v.Verify(ctx, is.TokenWithUnpublishedKey(t, claims)); err == nil {
		t.Fatal("unknown kid accepted while the provider is down")
	}
	if time.Since(start) > 6*time.Second {
		t.Fatalf("unknown kid took %s to fail", time.Since(start))
	}
	is.SetDown(false)
	// A rotated key is fetched on first sight of its kid.
	is.Rotate(t)
	if _, err := v.Verify(ctx, is.Token(t, claims)); err != nil {
		// The breaker may still be open from the outage: wait it out.
		time.Sleep(300 * time.Millisecond)
		if _, err := v.Verify(ctx, is.Token(t, claims)); err != nil {
			t.Fatalf("rotated key not picked up: %v", err)
		}
	}
	if is.JWKSFetches.Load() <= fetches {
		t.Fatal("JWKS was not refetched for the new kid")
	}
}

func TestPermissionsComeFromWhateverTheProviderGives(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	ctx := context.Background()
	base := func(extra map[string]any) oidctest.Claims {
		return oidctest.Claims{Subject: "bank-a", Audience: aud, Extra: extra}
	}
	for _, tc := range []struct {
		name    string
		mapping authz.Mapping
		claims  oidctest.Claims
		want    []string
	}{
		{"scope, space-separated", authz.Mapping{}, base(map[string]any{"scope": "openid base-b:read base-b:export"}), []string{"openid", "base-b:read", "base-b:export"}},
		{"scp, an array", authz.Mapping{}, base(map[string]any{"scope": nil, "scp": []string{"base-b:read"}}), []string{"base-b:read"}},
		{"scope without Base B permissions falls through to scp", authz.Mapping{},
			base(map[string]any{"scope": "openid email", "scp": []string{"base-b:read"}}), []string{"base-b:read"}},
		{"roles, configured", authz.Mapping{ScopeClaims: []string{"roles"}}, base(map[string]any{"scope": nil, "roles": []string{"base-b:read", "admin"}}), []string{"base-b:read", "admin"}},
		{"nested realm_access.roles", authz.Mapping{ScopeClaims: []string{"scope", "realm_access.roles"}},
			base(map[string]any{"scope": "profile email", "realm_access": map[string]any{"roles": []string{"base-b:read"}}}), []string{"base-b:read"}},
		{"order decides: groups before scope", authz.Mapping{ScopeClaims: []string{"groups", "scope"}},
			base(map[string]any{"scope": "base-b:read base-b:write", "groups": []string{"base-b:read"}}), []string{"base-b:read"}},
		{"no permission in the token: the client map", authz.Mapping{ClientScopes: map[string][]string{"bank-a": {"base-b:read"}}},
			base(map[string]any{"scope": nil}), []string{"base-b:read"}},
		{"a scope claim in the token wins over the map", authz.Mapping{ClientScopes: map[string][]string{"bank-a": {"base-b:read", "base-b:write"}}},
			base(map[string]any{"scope": "base-b:read"}), []string{"base-b:read"}},
		{"unmapped client without scopes gets nothing", authz.Mapping{ClientScopes: map[string][]string{"other": {"base-b:read"}}},
			base(map[string]any{"scope": nil}), nil},
	} {
		v := newVerifier(t, is.URL, authz.Options{Config: authz.Config{Mapping: tc.mapping}})
		p, err := v.Verify(ctx, is.Token(t, tc.claims))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(p.Scopes, tc.want) {
			t.Errorf("%s: scopes %v, want %v", tc.name, p.Scopes, tc.want)
		}
	}
}

func TestClientClaimIsConfigurable(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	tok := is.Token(t, oidctest.Claims{Subject: "user-7", Audience: aud, Scope: "base-b:read", Extra: map[string]any{"client_id": nil, "azp": "bank-a-app"}})
	p, err := newVerifier(t, is.URL, authz.Options{}).Verify(context.Background(), tok)
	if err != nil || p.ClientID != "bank-a-app" {
		t.Fatalf("default client claims: %+v %v", p, err)
	}
	p, err = newVerifier(t, is.URL, authz.Options{Config: authz.Config{Mapping: authz.Mapping{ClientClaims: []string{"sub"}}}}).Verify(context.Background(), tok)
	if err != nil || p.ClientID != "user-7" {
		t.Fatalf("client claim sub: %+v %v", p, err)
	}
}

func TestAudienceStringOrArray(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	v := newVerifier(t, is.URL, authz.Options{Config: authz.Config{Mapping: authz.Mapping{Audiences: []string{aud, "bank-a-client"}}}})
	ctx := context.Background()
	for name, c := range map[string]oidctest.Claims{
		"string":               {Subject: "bank-a", Audience: aud, Scope: "base-b:read"},
		"array with ours":      {Subject: "bank-a", Audiences: []string{"https://other.api", aud}, Scope: "base-b:read"},
		"client id as aud":     {Subject: "bank-a", Audience: "bank-a-client", Scope: "base-b:read"},
		"array, client id aud": {Subject: "bank-a", Audiences: []string{"bank-a-client"}, Scope: "base-b:read"},
		"no aud, listed client (Cognito)": {Subject: "bank-a-client", Scope: "base-b:read", Type: "-",
			Extra: map[string]any{"aud": nil, "token_use": "access"}},
	} {
		if _, err := v.Verify(ctx, is.Token(t, c)); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
	for name, c := range map[string]oidctest.Claims{
		"array without ours":       {Subject: "bank-a", Audiences: []string{"https://other.api", "x"}, Scope: "base-b:read"},
		"empty array":              {Subject: "bank-a", Audiences: []string{}, Scope: "base-b:read"},
		"no aud":                   {Subject: "bank-a", Scope: "base-b:read", Extra: map[string]any{"aud": nil}},
		"empty aud, listed client": {Subject: "bank-a-client", Audiences: []string{}, Scope: "base-b:read"},
	} {
		if _, err := v.Verify(ctx, is.Token(t, c)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestIDTokensAndTokensWithoutExpiryAreRefused(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	ctx := context.Background()
	good := oidctest.Claims{Subject: "bank-a", Audience: aud, Scope: "base-b:read"}
	with := func(f func(*oidctest.Claims)) oidctest.Claims { c := good; f(&c); return c }
	strict := newVerifier(t, is.URL, authz.Options{})
	// A provider that labels access tokens with the generic typ JWT, as
	// ZITADEL and Keycloak do, once allowed.
	generic := newVerifier(t, is.URL, authz.Options{Config: authz.Config{Mapping: authz.Mapping{TokenTypes: []string{"at+jwt", "JWT"}}}})

	idToken := with(func(c *oidctest.Claims) {
		c.Type, c.Extra = "JWT", map[string]any{"nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "auth_time": 1700000000}
	})
	for name, tc := range map[string]struct {
		v      *authz.Verifier
		claims oidctest.Claims
		ok     bool
	}{
		"at+jwt, strict":                     {strict, good, true},
		"application/at+jwt, strict":         {strict, with(func(c *oidctest.Claims) { c.Type = "application/at+jwt" }), true},
		"no typ, strict":                     {strict, with(func(c *oidctest.Claims) { c.Type = "-" }), true},
		"typ JWT, strict":                    {strict, with(func(c *oidctest.Claims) { c.Type = "JWT" }), false},
		"ID token, strict":                   {strict, idToken, false},
		"typ JWT, generic allowed":           {generic, with(func(c *oidctest.Claims) { c.Type = "JWT" }), true},
		"ID token, generic allowed":          {generic, idToken, false},
		"ID token without typ":               {generic, with(func(c *oidctest.Claims) { c.Type, c.Extra = "-", map[string]any{"nonce": "x"} }), false},
		"Keycloak ID token (typ claim ID)":   {generic, with(func(c *oidctest.Claims) { c.Type, c.Extra = "JWT", map[string]any{"typ": "ID"} }), false},
		"Keycloak access token (Bearer)":     {generic, with(func(c *oidctest.Claims) { c.Type, c.Extra = "JWT", map[string]any{"typ": "Bearer"} }), true},
		"Cognito ID token (token_use id)":    {generic, with(func(c *oidctest.Claims) { c.Type, c.Extra = "-", map[string]any{"token_use": "id"} }), false},
		"Cognito access token":               {generic, with(func(c *oidctest.Claims) { c.Type, c.Extra = "-", map[string]any{"token_use": "access"} }), true},
		"logout token type, even if allowed": {generic, with(func(c *oidctest.Claims) { c.Type = "logout+jwt" }), false},
		"missing exp":                        {strict, with(func(c *oidctest.Claims) { c.NoExpiry = true }), false},
		"missing exp, generic":               {generic, with(func(c *oidctest.Claims) { c.NoExpiry = true; c.Type = "JWT" }), false},
	} {
		_, err := tc.v.Verify(ctx, is.Token(t, tc.claims))
		if tc.ok && err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestParseClientScopes(t *testing.T) {
	t.Parallel()
	m, err := authz.ParseClientScopes(" bank-a = base-b:read base-b:export ; bank-b=base-b:read;")
	if err != nil || !slices.Equal(m["bank-a"], []string{"base-b:read", "base-b:export"}) || !slices.Equal(m["bank-b"], []string{"base-b:read"}) || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"bank-a", "=base-b:read", "bank-a=", "a=x;a=y"} {
		if _, err := authz.ParseClientScopes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
