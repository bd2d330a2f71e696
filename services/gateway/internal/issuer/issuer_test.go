package issuer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/issuer"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
)

const signingKeys = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

var pepper = []byte("pepper-pepper-pepper-pepper-pepp")

type clients map[string]issuer.Client

func (c clients) Client(_ context.Context, id string) (issuer.Client, error) {
	cl, ok := c[id]
	if !ok {
		return cl, issuer.ErrUnknownClient
	}
	return cl, nil
}

// c1 is a client that may ask for base-b:read, its secret s3cret.
func c1() clients {
	return clients{"c1": {ID: "c1", SecretHash: apikey.Hash(pepper, "s3cret"), Scopes: []string{"base-b:read"}}}
}

// serve serves the token endpoint of an issuer made with opts and the
// test's URL, audience, signing keys and pepper.
func serve(t *testing.T, opts issuer.Options) http.Handler {
	t.Helper()
	keys, err := issuer.ParseKeys(signingKeys)
	if err != nil || len(keys) != 1 || len(keys[1]) != ed25519.PrivateKeySize {
		t.Fatal(err)
	}
	opts.URL, opts.Audience, opts.Keys, opts.Pepper = "http://issuer", "aud", keys, pepper
	is, err := issuer.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	is.Register(mux)
	return mux
}

// postToken posts a token request from the address from, with basic
// credentials when user is set.
func postToken(h http.Handler, from string, form url.Values, user, pass string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(form.Encode()))
	req.RemoteAddr = from + ":1234"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var clientCredentials = url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:read"}}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	h := serve(t, issuer.Options{Clients: c1()})
	post := func(form url.Values, user, pass string) (int, map[string]any) {
		rec := postToken(h, "192.0.2.1", form, user, pass)
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	cc := clientCredentials
	if code, body := post(cc, "c1", "s3cret"); code != 200 || body["token_type"] != "Bearer" || body["scope"] != "base-b:read" {
		t.Fatalf("valid client: %d %v", code, body)
	}
	for name, tc := range map[string]struct {
		form       url.Values
		user, pass string
		code       int
		err        string
	}{
		"wrong secret":   {cc, "c1", "nope", 401, "invalid_client"},
		"unknown client": {cc, "c9", "s3cret", 401, "invalid_client"},
		"no client":      {cc, "", "", 401, "invalid_client"},
		"bad grant":      {url.Values{"grant_type": {"password"}}, "c1", "s3cret", 400, "unsupported_grant_type"},
		"foreign scope":  {url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:export"}}, "c1", "s3cret", 400, "invalid_scope"},
		// Without a scope, never every scope the client has (RFC 6749 §3.3).
		"no scope":          {url.Values{"grant_type": {"client_credentials"}}, "c1", "s3cret", 400, "invalid_scope"},
		"control in id":     {cc, "c\x01", "s3cret", 401, "invalid_client"},
		"control in secret": {cc, "c1", "s3\x00cret", 401, "invalid_client"},
	} {
		if code, body := post(tc.form, tc.user, tc.pass); code != tc.code || body["error"] != tc.err {
			t.Errorf("%s: %d %v", name, code, body)
		}
	}
	for _, bad := range []string{"", "x", "1:short", "0:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="} {
		if _, err := issuer.ParseKeys(bad); err == nil {
			t.Errorf("ParseKeys(%q) accepted", bad)
		}
	}
}

type countingClients struct {
	clients
	lookups int
}

func (c *countingClients) Client(ctx context.Context, id string) (issuer.Client, error) {
	c.lookups++
	return c.clients.Client(ctx, id)
}

// Failing costs nothing: an unknown client id is looked up once, and an
// address past its failed authentications is refused before any lookup
// while another address is still served.
func TestFailedClientAuthenticationCostsNothing(t *testing.T) {
	t.Parallel()
	cc := &countingClients{clients: c1()}
	h := serve(t, issuer.Options{Clients: cc, Failures: limits.NewFailures(5, 1)})
	post := func(from, user, pass string) int { return postToken(h, from, clientCredentials, user, pass).Code }
	for range 5 {
		if code := post("203.0.113.9", "made-up", "x"); code != 401 {
			t.Fatalf("unknown client: %d", code)
		}
	}
	if cc.lookups != 1 {
		t.Fatalf("an unknown client id was looked up %d times", cc.lookups)
	}
	if code := post("203.0.113.9", "c1", "s3cret"); code != 429 {
		t.Fatalf("an address past its failures: %d, want 429", code)
	}
	if code := post("198.51.100.4", "c1", "s3cret"); code != 200 {
		t.Fatalf("another address: %d, want 200", code)
	}
}

type brokenClients struct{}

func (brokenClients) Client(context.Context, string) (issuer.Client, error) {
	return issuer.Client{}, errors.New("pool closed")
}

// A client store failure is answered temporarily_unavailable without its
// cause, which is logged once.
func TestStoreFailureIsLoggedNotShown(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	h := serve(t, issuer.Options{Clients: brokenClients{}, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	rec := postToken(h, "192.0.2.1", clientCredentials, "c1", "s3cret")
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "pool closed") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if strings.Count(log.String(), "masked error") != 1 || !strings.Contains(log.String(), "client lookup: pool closed") {
		t.Fatalf("log: %s", log.String())
	}
}
