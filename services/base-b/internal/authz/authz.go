// Package authz verifies OAuth2 JWT access tokens for Base B with go-oidc:
// issuer discovery, a JWKS cached and refetched on an unknown key id,
// issuer, audience, expiry (with a small leeway) and an algorithm
// allow-list; then it checks the RPC's scope. Any conforming OpenID
// provider works: only its issuer URL and the audience are configured.
package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
)

// Scopes.
const (
	ScopeRead   = "base-b:read"
	ScopeWrite  = "base-b:write"
	ScopeExport = "base-b:export"
)

// Algorithms accepted; "none" and HMAC are never.
var Algorithms = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.PS256, oidc.EdDSA}

// Principal is a verified caller.
type Principal struct {
	Subject  string
	ClientID string
	Scopes   []string
}

// Verifier verifies access tokens.
type Verifier struct {
	v *oidc.IDTokenVerifier
}

// Options for NewVerifier.
type Options struct {
	Issuer   string
	Audience string
	// Leeway tolerated on expiry (default 30s).
	Leeway time.Duration
	// Breaker guards every request to the provider (discovery and JWKS).
	Breaker *breaker.Breaker
	// HTTPClient for the provider (default: 5s timeout).
	HTTPClient *http.Client
}

// breakerTransport sends provider requests through a circuit breaker.
type breakerTransport struct {
	b    *breaker.Breaker
	next http.RoundTripper
}

func (t breakerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return breaker.Do(t.b, func() (*http.Response, error) {
		resp, err := t.next.RoundTrip(r)
		if err == nil && resp.StatusCode >= 500 {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("identity provider answered %d", resp.StatusCode)
		}
		return resp, err
	})
}

// NewVerifier discovers the provider (retrying until ctx ends) and returns
// a verifier. The context also carries the HTTP client for later JWKS
// fetches, so it must live as long as the verifier.
func NewVerifier(ctx context.Context, o Options) (*Verifier, error) {
	if o.Issuer == "" || o.Audience == "" {
		return nil, errors.New("authz: issuer and audience are required")
	}
	if o.Leeway <= 0 {
		o.Leeway = 30 * time.Second
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Breaker != nil {
		next := client.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		c := *client
		c.Transport = breakerTransport{b: o.Breaker, next: next}
		client = &c
	}
	ctx = oidc.ClientContext(ctx, client)
	var provider *oidc.Provider
	var err error
	for {
		provider, err = oidc.NewProvider(ctx, o.Issuer)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("authz: discovery of %s: %w", o.Issuer, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	leeway := o.Leeway
	v := provider.Verifier(&oidc.Config{
		ClientID:             o.Audience,
		SupportedSigningAlgs: Algorithms,
		Now:                  func() time.Time { return time.Now().Add(-leeway) },
	})
	return &Verifier{v: v}, nil
}

// Verify checks a raw token and returns its principal.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	tok, err := v.v.Verify(ctx, raw)
	if err != nil {
		return Principal{}, err
	}
	var claims struct {
		Scope    string   `json:"scope"`
		Scp      []string `json:"scp"`
		ClientID string   `json:"client_id"`
		Azp      string   `json:"azp"`
	}
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, err
	}
	p := Principal{Subject: tok.Subject, ClientID: claims.ClientID, Scopes: append(strings.Fields(claims.Scope), claims.Scp...)}
	if p.ClientID == "" {
		p.ClientID = claims.Azp
	}
	return p, nil
}

type principalKey struct{}

// FromContext returns the verified caller.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// scopeFor names the scope each Base B method needs.
func scopeFor(method string) string {
	switch {
	case strings.HasSuffix(method, "/ExportFeatures"):
		return ScopeExport
	case strings.HasSuffix(method, "/GetProfile"), strings.HasSuffix(method, "/GetScore"):
		return ScopeRead
	}
	return ScopeWrite
}

func (v *Verifier) authorize(ctx context.Context, method string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 || len(vals[0]) < 8 || !strings.EqualFold(vals[0][:7], "bearer ") || len(vals[0]) > 16<<10 {
		return nil, status.Error(codes.Unauthenticated, "a bearer access token is required")
	}
	p, err := v.Verify(ctx, strings.TrimSpace(vals[0][7:]))
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid access token")
	}
	if want := scopeFor(method); !slices.Contains(p.Scopes, want) {
		return nil, status.Errorf(codes.PermissionDenied, "token lacks scope %s", want)
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// Unary requires a valid token with the method's scope on Base B's RPCs.
func (v *Verifier) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, "/baseb.v1.") {
			return handler(ctx, req)
		}
		ctx, err := v.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w wrappedStream) Context() context.Context { return w.ctx }

// Stream does the same for streaming RPCs.
func (v *Verifier) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !strings.HasPrefix(info.FullMethod, "/baseb.v1.") {
			return handler(srv, ss)
		}
		ctx, err := v.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, wrappedStream{ServerStream: ss, ctx: ctx})
	}
}
