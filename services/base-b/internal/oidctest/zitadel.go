package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OP is a third-party OpenID provider: the op package of
// github.com/zitadel/oidc (the library ZITADEL is built on), a code base
// independent of go-oidc and of Strata's own issuer. Tokens come from its
// real endpoints (client-credentials grant, introspection, revocation);
// only the storage behind it is this file's, in memory.
//
// As that provider does, its JWT access tokens carry no scope claim, name
// the client in aud (plus any extra audiences configured) and are typed
// "JWT"; its opaque tokens are encrypted token ids that only its
// introspection endpoint can read.
type OP struct {
	URL string
	srv *httptest.Server
	st  *opStorage
	p   *op.Provider
	// Down makes every endpoint answer 503.
	down atomic.Bool
	// Introspections counts introspection requests that reached it.
	Introspections atomic.Int64
}

// OPOptions configure an OP.
type OPOptions struct {
	// Opaque: access tokens are opaque (checked by introspection);
	// otherwise JWTs.
	Opaque bool
	// Audience is added to every token's aud, after the client id (as
	// ZITADEL adds the project).
	Audience []string
	// TokenLifetime of access tokens (default 5m).
	TokenLifetime time.Duration
	// Scopes, when true, puts the granted scopes in introspection answers.
	Scopes bool
}

// StartOP starts a provider.
func StartOP(t testing.TB, o OPOptions) *OP {
	t.Helper()
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = 5 * time.Minute
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	st := &opStorage{o: o, key: key, kid: "zitadel-" + time.Now().Format("150405.000000"), clients: map[string]*opClient{}, tokens: map[string]*opToken{}}
	if o.Opaque {
		st.tokenType = op.AccessTokenTypeBearer
	} else {
		st.tokenType = op.AccessTokenTypeJWT
	}
	p := &OP{st: st}
	var cryptoKey [32]byte
	_, _ = rand.Read(cryptoKey[:])
	p.srv = httptest.NewUnstartedServer(nil)
	p.URL = "http://" + p.srv.Listener.Addr().String()
	provider, err := op.NewProvider(&op.Config{CryptoKey: cryptoKey}, st, op.StaticIssuer(p.URL), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	p.p = provider
	p.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/introspect") {
			p.Introspections.Add(1)
		}
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		provider.ServeHTTP(w, r)
	})
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// SetDown makes every endpoint answer 503 (an outage).
func (p *OP) SetDown(down bool) { p.down.Store(down) }

// AddClient registers a confidential client allowed the client-credentials
// grant (a ZITADEL service user or an API app).
func (p *OP) AddClient(id, secret string) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	p.st.clients[id] = &opClient{id: id, secret: secret, tokenType: p.st.tokenType}
}

// Token gets an access token from the token endpoint with the client
// credentials grant.
func (p *OP) Token(t testing.TB, clientID, secret string, scopes ...string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	p.post(t, "/oauth/token", clientID, secret, form, &out)
	if out.AccessToken == "" {
		t.Fatal("token endpoint issued no access token")
	}
	return out.AccessToken
}

// Revoke revokes a token at the revocation endpoint (RFC 7009).
func (p *OP) Revoke(t testing.TB, clientID, secret, token string) {
	t.Helper()
	p.post(t, "/revoke", clientID, secret, url.Values{"token": {token}}, nil)
}

func (p *OP) post(t testing.TB, path, id, secret string, form url.Values, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// IDToken issues an OpenID Connect ID token for the client the way the
// provider does at the end of a login (op.CreateIDToken), for a user, with
// the at_hash of the access token issued with it.
func (p *OP) IDToken(t testing.TB, clientID, accessToken string) string {
	t.Helper()
	p.st.mu.Lock()
	c := p.st.clients[clientID]
	p.st.mu.Unlock()
	ctx := op.ContextWithIssuer(context.Background(), p.URL)
	tok, err := op.CreateIDToken(ctx, p.URL, idTokenRequest{client: clientID}, time.Hour, accessToken, "", p.st, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type idTokenRequest struct{ client string }

func (r idTokenRequest) GetAMR() []string       { return []string{"pwd"} }
func (r idTokenRequest) GetAudience() []string  { return []string{r.client} }
func (r idTokenRequest) GetAuthTime() time.Time { return time.Now().Add(-time.Minute) }
func (r idTokenRequest) GetClientID() string    { return r.client }
func (r idTokenRequest) GetScopes() []string    { return []string{"openid"} }
func (r idTokenRequest) GetSubject() string     { return "user-1" }

// ---- storage: only what client credentials, introspection, revocation
// and the keys endpoint use; the rest of op.Storage is never called.

type opToken struct {
	id, client, subject string
	audience, scopes    []string
	expires             time.Time
}

type opStorage struct {
	op.Storage // unused methods (authorization code, refresh, device …)
	o          OPOptions
	key        *rsa.PrivateKey
	kid        string
	tokenType  op.AccessTokenType

	mu      sync.Mutex
	clients map[string]*opClient
	tokens  map[string]*opToken
}

func (s *opStorage) client(id string) (*opClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, errors.New("no such client")
	}
	return c, nil
}

func (s *opStorage) Health(context.Context) error { return nil }

func (s *opStorage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	c, err := s.client(id)
	if err != nil || c.secret != secret {
		return nil, errors.New("wrong client or secret")
	}
	return c, nil
}

func (s *opStorage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	return &oidc.JWTTokenRequest{Subject: id, Audience: append([]string{id}, s.o.Audience...), Scopes: scopes}, nil
}

func (s *opStorage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &opToken{id: uuid.NewString(), client: r.GetSubject(), subject: r.GetSubject(), audience: r.GetAudience(), scopes: r.GetScopes(),
		expires: time.Now().Add(s.o.TokenLifetime).Truncate(time.Second)}
	s.tokens[t.id] = t
	return t.id, t.expires, nil
}

func (s *opStorage) RevokeToken(_ context.Context, tokenID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenID]; ok && t.client == clientID {
		delete(s.tokens, tokenID)
	}
	return nil
}

func (s *opStorage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *opStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	return s.client(id)
}

func (s *opStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, err := s.client(id)
	if err != nil || c.secret != secret {
		return errors.New("wrong client or secret")
	}
	return nil
}

// SetIntrospectionFromToken answers for live tokens (a missing or expired
// one makes the library answer active:false).
func (s *opStorage) SetIntrospectionFromToken(_ context.Context, r *oidc.IntrospectionResponse, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		return errors.New("token is not active")
	}
	r.ClientID, r.Subject, r.Audience = t.client, t.subject, t.audience
	r.Expiration, r.TokenType = oidc.FromTime(t.expires), oidc.BearerToken
	if s.o.Scopes {
		r.Scope = t.scopes
	}
	return nil
}

func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

type opKey struct {
	s *opStorage
}

func (k opKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k opKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k opKey) Key() any                                    { return k.s.key }
func (k opKey) ID() string                                  { return k.s.kid }
func (k opKey) Use() string                                 { return "sig" }

type opPublicKey struct{ opKey }

func (k opPublicKey) Key() any { return &k.s.key.PublicKey }

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) { return opKey{s}, nil }
func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{opPublicKey{opKey{s}}}, nil
}

// opClient is a confidential machine client.
type opClient struct {
	id, secret string
	tokenType  op.AccessTokenType
}

func (c *opClient) GetID() string                       { return c.id }
func (c *opClient) RedirectURIs() []string              { return nil }
func (c *opClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *opClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeCode}
}
func (c *opClient) LoginURL(string) string              { return "" }
func (c *opClient) AccessTokenType() op.AccessTokenType { return c.tokenType }
func (c *opClient) IDTokenLifetime() time.Duration      { return time.Hour }
func (c *opClient) DevMode() bool                       { return true }
func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *opClient) IsScopeAllowed(string) bool           { return true }
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *opClient) ClockSkew() time.Duration             { return 0 }
