package issuer_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/services/gateway/internal/issuer"
)

type brokenClients struct{}

func (brokenClients) Client(context.Context, string) (issuer.Client, error) {
	return issuer.Client{}, errors.New("pool closed")
}

// A client store failure is answered temporarily_unavailable without its
// cause, which is logged once.
func TestStoreFailureIsLoggedNotShown(t *testing.T) {
	t.Parallel()
	keys, _ := issuer.ParseKeys("1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	var log bytes.Buffer
	is, err := issuer.New(issuer.Options{URL: "http://issuer", Audience: "aud", Keys: keys, Pepper: []byte("pepper-pepper-pepper-pepper-pepp"),
		Clients: brokenClients{}, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:read"}}
	req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("c1", "s3cret")
	mux := http.NewServeMux()
	is.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "pool closed") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if strings.Count(log.String(), "masked error") != 1 || !strings.Contains(log.String(), "client lookup: pool closed") {
		t.Fatalf("log: %s", log.String())
	}
}
