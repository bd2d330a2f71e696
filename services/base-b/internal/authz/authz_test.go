package authz_test

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/services/base-b/internal/authz"
	"github.com/strata-bureau/strata/services/base-b/internal/oidctest"
)

const aud = "strata-base-b"

func verifier(t *testing.T, is *oidctest.Issuer) *authz.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := authz.NewVerifier(ctx, authz.Options{Issuer: is.URL, Audience: aud,
		Breaker: breaker.Standalone(breaker.Config{Name: "oidc", ConsecutiveFailures: 3, OpenFor: 200 * time.Millisecond})})
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
	v := verifier(t, is)
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

func TestAnyConformingIssuerWorksWhenConfigured(t *testing.T) {
	t.Parallel()
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
		is := oidctest.New(t, alg)
		v := verifier(t, is)
		if _, err := v.Verify(context.Background(), is.Token(t, oidctest.Claims{Subject: "s", Audience: aud, Scope: "base-b:read"})); err != nil {
			t.Errorf("%s issuer: %v", alg, err)
		}
	}
}

func TestProviderOutageKeepsCachedKeys(t *testing.T) {
	t.Parallel()
	is := oidctest.New(t, jose.RS256)
	v := verifier(t, is)
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
