// Package oidctest is a small, standards-conforming OpenID provider for
// tests: discovery (RFC 8414 / OIDC Discovery), a JWKS (RFC 7517) and JWT
// access tokens (RFC 9068) signed with go-jose. It is deliberately not
// Strata's own issuer, so Base B is proven against an independent one.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is a running test provider.
type Issuer struct {
	URL  string
	alg  jose.SignatureAlgorithm
	srv  *httptest.Server
	down atomic.Bool

	mu   sync.Mutex
	keys []jose.JSONWebKey // private keys; the JWKS publishes their public halves
	// JWKSFetches counts JWKS downloads.
	JWKSFetches atomic.Int64
}

// New starts an issuer signing with alg (RS256 or ES256).
func New(t testing.TB, alg jose.SignatureAlgorithm) *Issuer {
	t.Helper()
	is := &Issuer{alg: alg}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/jwks", "token_endpoint": is.URL + "/token",
			"response_types_supported": []string{"token"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{string(alg)},
			"grant_types_supported":                 []string{"client_credentials"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		is.JWKSFetches.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range is.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	is.Rotate(t)
	return is
}

func (is *Issuer) newKey(t testing.TB, kid string) jose.JSONWebKey {
	var priv crypto.Signer
	var err error
	if is.alg == jose.ES256 {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(is.alg), Use: "sig"}
}

// Rotate adds a new signing key (the old ones stay published).
func (is *Issuer) Rotate(t testing.TB) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, is.newKey(t, "k"+time.Now().Format("150405.000000000")))
}

// SetDown makes discovery and the JWKS answer 503.
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// PublicKey of the current signing key.
func (is *Issuer) PublicKey() any {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[len(is.keys)-1].Public().Key
}

// Claims of a token; zero times become sensible defaults.
type Claims struct {
	Subject, Audience, Scope string
	Issuer                   string // default: this issuer
	Expiry, NotBefore        time.Time
	// Audiences, when set, makes aud an array.
	Audiences []string
	// Type is the header typ (default at+jwt; "-" leaves it out).
	Type string
	// NoExpiry leaves exp out.
	NoExpiry bool
	// Extra claims, set last (nil values delete a claim).
	Extra map[string]any
}

// Token mints an RFC 9068 access token with the current key.
func (is *Issuer) Token(t testing.TB, c Claims) string {
	is.mu.Lock()
	key := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	return is.sign(t, key, c)
}

// TokenWithUnpublishedKey mints a token whose kid the JWKS never lists.
func (is *Issuer) TokenWithUnpublishedKey(t testing.TB, c Claims) string {
	return is.sign(t, is.newKey(t, "ghost"), c)
}

func (is *Issuer) sign(t testing.TB, key jose.JSONWebKey, c Claims) string {
	t.Helper()
	now := time.Now()
	if c.Issuer == "" {
		c.Issuer = is.URL
	}
	if c.Expiry.IsZero() {
		c.Expiry = now.Add(5 * time.Minute)
	}
	claims := map[string]any{"iss": c.Issuer, "sub": c.Subject, "aud": c.Audience, "scope": c.Scope,
		"client_id": c.Subject, "iat": now.Unix(), "exp": c.Expiry.Unix(), "jti": now.Format(time.RFC3339Nano)}
	if !c.NotBefore.IsZero() {
		claims["nbf"] = c.NotBefore.Unix()
	}
	if c.Audiences != nil {
		claims["aud"] = c.Audiences
	}
	if c.NoExpiry {
		delete(claims, "exp")
	}
	for k, v := range c.Extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	payload, _ := json.Marshal(claims)
	opts := (&jose.SignerOptions{}).WithHeader("kid", key.KeyID)
	switch c.Type {
	case "":
		opts = opts.WithType("at+jwt")
	case "-":
	default:
		opts = opts.WithType(jose.ContentType(c.Type))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: is.alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
