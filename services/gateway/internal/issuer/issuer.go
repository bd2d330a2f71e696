// Package issuer is the gateway's small built-in OAuth2 authorization
// server for the local stack: the client-credentials grant (RFC 6749
// §4.4), discovery metadata (RFC 8414 / OpenID Discovery), a JWKS (RFC
// 7517) and JWT access tokens (RFC 9068) signed with Ed25519 keys from
// configuration. Every replica given the same keys issues tokens every
// other replica's JWKS can verify; the newest key signs, older ones stay
// published so rotation never invalidates a live token. In production any
// standard provider replaces it by URL.
package issuer

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/strata-bureau/strata/pkg/input"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
)

// Client is an OAuth client as stored.
type Client struct {
	ID         string
	SecretHash []byte
	Scopes     []string
}

// Clients finds clients.
type Clients interface {
	Client(ctx context.Context, id string) (Client, error)
}

// Failures limits failed client authentications per source (see the
// gateway's limits.Failures).
type Failures interface {
	Blocked(src string) (time.Duration, bool)
	Fail(src string)
}

// Issuer serves the endpoints.
type Issuer struct {
	url      string
	audience string
	ttl      time.Duration
	pepper   []byte
	clients  Clients
	signer   jose.Signer
	jwks     []byte
	failures Failures
	clientIP func(*http.Request) (string, error)
	lookups  *limits.Lookups
	logger   *slog.Logger
}

// ParseKeys reads "1:<base64 32-byte seed>,2:..." into Ed25519 keys by version.
func ParseKeys(s string) (map[int]ed25519.PrivateKey, error) {
	out := map[int]ed25519.PrivateKey{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		v, b64, ok := strings.Cut(part, ":")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n <= 0 {
			return nil, errors.New("issuer keys must be VERSION:BASE64SEED separated by commas")
		}
		seed, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("issuer key %d must be a 32-byte seed, base64-encoded", n)
		}
		out[n] = ed25519.NewKeyFromSeed(seed)
	}
	if len(out) == 0 {
		return nil, errors.New("at least one issuer key is required")
	}
	return out, nil
}

// Options for New.
type Options struct {
	URL      string // the issuer identifier, e.g. http://127.0.0.1:8080
	Audience string // the audience of issued tokens (Base B's)
	TTL      time.Duration
	Keys     map[int]ed25519.PrivateKey
	Pepper   []byte // client secrets are stored as HMAC(pepper, secret)
	Clients  Clients
	// Failures, when set, refuses a client address past its failed
	// authentications before any lookup; ClientIP says who that is
	// (default: the connection's peer).
	Failures Failures
	ClientIP func(*http.Request) (string, error)
	// MaxLookups bounds concurrent client lookups (default 16).
	MaxLookups int
	// Logger records the cause of every error answered without it
	// (temporarily_unavailable, server_error); default: discard.
	Logger *slog.Logger
}

// New builds an issuer.
func New(o Options) (*Issuer, error) {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	versions := make([]int, 0, len(o.Keys))
	for v := range o.Keys {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	set := jose.JSONWebKeySet{}
	for _, v := range versions {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: o.Keys[v].Public(), KeyID: kid(v), Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	newest := versions[len(versions)-1]
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: o.Keys[newest]},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid(newest)))
	if err != nil {
		return nil, err
	}
	if o.ClientIP == nil {
		o.ClientIP = func(r *http.Request) (string, error) {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			return host, err
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Issuer{url: strings.TrimRight(o.URL, "/"), audience: o.Audience, ttl: o.TTL, pepper: o.Pepper, clients: o.Clients, signer: signer, jwks: jwks,
		failures: o.Failures, clientIP: o.ClientIP, lookups: limits.NewLookups(o.MaxLookups, 0), logger: o.Logger}, nil
}

func kid(v int) string { return "strata-" + strconv.Itoa(v) }

// Register adds the endpoints to mux.
func (is *Issuer) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/openid-configuration", is.discovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", is.discovery)
	mux.HandleFunc("GET /oauth2/jwks", is.keys)
	mux.HandleFunc("POST /oauth2/token", is.token)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (is *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                is.url,
		"token_endpoint":                        is.url + "/oauth2/token",
		"jwks_uri":                              is.url + "/oauth2/jwks",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.EdDSA)},
		"scopes_supported":                      []string{"base-b:read", "base-b:write", "base-b:export"},
	})
}

func (is *Issuer) keys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(is.jwks)
}

// oauthError answers per RFC 6749 §5.2.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="strata"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// ErrUnknownClient is what Clients returns for an id it does not know.
var ErrUnknownClient = errors.New("unknown client")

// client looks a client up: an id found unknown is refused without a
// lookup for a while, and at most MaxLookups lookups run at once
// (limits.Lookups).
func (is *Issuer) client(ctx context.Context, id string) (Client, error) {
	return limits.Lookup(ctx, is.lookups, id, ErrUnknownClient, func(ctx context.Context) (Client, error) {
		return is.clients.Client(ctx, id)
	})
}

func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be a small application/x-www-form-urlencoded form")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
		return
	}
	ip, err := is.clientIP(r)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the client address cannot be determined")
		return
	}
	if is.failures != nil {
		if wait, blocked := is.failures.Blocked(ip); blocked {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed client authentications from this address; retry later")
			return
		}
	}
	fail := func() {
		if is.failures != nil {
			is.failures.Fail(ip)
		}
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || secret == "" || input.Token(id, 128, false) != nil || input.Text(secret, 256) != nil {
		fail()
		return
	}
	// RFC 6749 §3.3: the scope is asked for, never implied. Refused
	// before any lookup, so a request without one costs nothing.
	req := strings.Fields(r.PostForm.Get("scope"))
	if len(req) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "name the scopes you need, e.g. scope=base-b:read")
		return
	}
	c, err := is.client(r.Context(), id)
	if err != nil && !errors.Is(err, ErrUnknownClient) {
		is.logger.WarnContext(r.Context(), "masked error", "status", http.StatusServiceUnavailable, "err", fmt.Errorf("client lookup: %w", err))
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "clients cannot be looked up now; retry later")
		return
	}
	if err != nil || !hmac.Equal(apikey.Hash(is.pepper, secret), c.SecretHash) {
		fail()
		return
	}
	for _, s := range req {
		if !slices.Contains(c.Scopes, s) {
			oauthError(w, http.StatusBadRequest, "invalid_scope", "scope "+s+" is not allowed for this client")
			return
		}
	}
	scopes := req
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": is.url, "sub": c.ID, "aud": is.audience, "client_id": c.ID, "scope": strings.Join(scopes, " "),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(is.ttl).Unix(), "jti": uuid.NewString(),
	})
	jws, err := is.signer.Sign(claims)
	if err != nil {
		is.logger.ErrorContext(r.Context(), "masked error", "status", http.StatusInternalServerError, "err", fmt.Errorf("sign token: %w", err))
		oauthError(w, http.StatusInternalServerError, "server_error", "could not sign the token")
		return
	}
	tok, _ := jws.CompactSerialize()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int(is.ttl.Seconds()), "scope": strings.Join(scopes, " ")})
}
