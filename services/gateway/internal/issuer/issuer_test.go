package issuer_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/services/gateway/internal/issuer"
)

type clients map[string]issuer.Client

func (c clients) Client(_ context.Context, id string) (issuer.Client, error) {
	cl, ok := c[id]
	if !ok {
		return cl, errors.New("no such client")
	}
	return cl, nil
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	pepper := []byte("pepper-pepper-pepper-pepper-pepp")
	keys, err := issuer.ParseKeys("1:" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil || len(keys) != 1 || len(keys[1]) != ed25519.PrivateKeySize {
		t.Fatal(err)
	}
	is, err := issuer.New(issuer.Options{URL: "http://issuer", Audience: "aud", Keys: keys, Pepper: pepper,
		Clients: clients{"c1": {ID: "c1", SecretHash: issuer.HashSecret(pepper, "s3cret"), Scopes: []string{"base-b:read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	is.Register(mux)
	post := func(form url.Values, user, pass string) (int, map[string]any) {
		req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
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
