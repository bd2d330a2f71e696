// Package authz checks OAuth2 access tokens for Base B, from any
// conforming OpenID provider configured by its issuer URL:
//
//   - JWT access tokens with go-oidc: discovery, a JWKS cached and refetched
//     on an unknown key id, issuer, audience (a string or an array, any of
//     the configured audiences), expiry (required, with a small leeway), an
//     algorithm allow-list and RFC 9068's typ, so an ID token is never taken
//     for an access token;
//   - opaque tokens by introspection (RFC 7662), authenticated with client
//     credentials, answers cached until the token's exp at most, refusals in
//     a negative cache, the provider behind a breaker and a deadline.
//
// Permissions come from an ordered list of claims (scope, scp, roles,
// groups …) or, for providers that put none in tokens, from a configured
// client → scopes map. Finally the token's client must be bound to the
// partner whose API key made the call (see binding.go).
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
	// PartnerID is the partner whose API key made the call (from the
	// gateway), when the call came through it.
	PartnerID string
	// Expiry of the token.
	Expiry time.Time
}

// Errors of Verify. ErrInvalidToken is the caller's fault; ErrProvider
// means the token could not be checked because the provider failed.
var (
	ErrInvalidToken = errors.New("invalid access token")
	ErrProvider     = errors.New("identity provider unavailable")
)

// Introspection modes.
const (
	IntrospectAuto = "auto" // opaque tokens (not JWTs) are introspected
	IntrospectOn   = "on"   // every token is introspected
	IntrospectOff  = "off"  // JWTs only
)

// Verifier verifies access tokens.
type Verifier struct {
	v      *oidc.IDTokenVerifier
	m      Mapping
	mode   string
	intro  *introspector
	leeway time.Duration
	now    func() time.Time
}

// Options for NewVerifier: the settings, and what a verifier is given
// rather than configured with.
type Options struct {
	Config
	// Breaker guards every request to the provider (discovery, JWKS,
	// introspection); only the provider's own failures count.
	Breaker *breaker.Breaker
	// HTTPClient for the provider (default: 5s timeout).
	HTTPClient *http.Client
	// Now is the clock (tests).
	Now func() time.Time
}

// breakerTransport sends provider requests through a circuit breaker; only
// failures of the provider count: transport errors, timeouts and 5xx
// answers, never a caller hanging up.
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
// a verifier. o.Config is used as given and checked: loading gives an
// unset variable its default, and config.Defaults gives a configuration
// built in code the same ones, but a setting given as zero stays zero
// (TOKEN_LEEWAY=0 is no leeway). The context also carries the HTTP client
// for later JWKS fetches, so it must live as long as the verifier.
func NewVerifier(ctx context.Context, o Options) (*Verifier, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	client := httpClient(o)
	provider, err := discover(oidc.ClientContext(ctx, client), o.Issuer)
	if err != nil {
		return nil, err
	}
	leeway, now := o.Leeway, o.Now
	v := &Verifier{m: o.Mapping, mode: o.Introspection, leeway: leeway, now: now,
		v: provider.Verifier(&oidc.Config{
			SkipClientIDCheck:    true, // audiences are checked against the list in Mapping
			SupportedSigningAlgs: Algorithms,
			Now:                  func() time.Time { return now().Add(-leeway) },
		})}
	if o.Introspection == IntrospectOff {
		return v, nil
	}
	endpoint := o.IntrospectionURL
	if endpoint == "" {
		var meta struct {
			Endpoint string `json:"introspection_endpoint"`
		}
		if err := provider.Claims(&meta); err != nil {
			return nil, fmt.Errorf("authz: discovery document: %w", err)
		}
		endpoint = meta.Endpoint
	}
	switch {
	case endpoint != "" && o.ClientID != "" && !o.ClientSecret.IsZero():
		v.intro = newIntrospector(introspectorOptions{Config: o.Config, endpoint: endpoint, client: client, now: now})
	case o.Introspection == IntrospectOn:
		return nil, errors.New("authz: introspection is on but the provider publishes no introspection_endpoint " +
			"or no client id and secret are configured")
	}
	return v, nil
}

// Verify checks a raw token and returns its principal. Errors wrap
// ErrInvalidToken or ErrProvider.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	typ, isJWT := jwtHeader(raw)
	if v.mode == IntrospectOn || (v.mode == IntrospectAuto && !isJWT) {
		if v.intro == nil {
			return Principal{}, fmt.Errorf("%w: not a JWT, and no introspection is configured", ErrInvalidToken)
		}
		return v.intro.check(ctx, raw, &v.m)
	}
	if !isJWT {
		return Principal{}, fmt.Errorf("%w: not a JWT", ErrInvalidToken)
	}
	tok, err := v.v.Verify(ctx, raw)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if tok.Expiry.IsZero() {
		return Principal{}, fmt.Errorf("%w: the token has no exp", ErrInvalidToken)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := v.m.checkType(typ, claims); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	p, err := v.m.principal(claims)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	p.Expiry = tok.Expiry
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
	case partnerFacing(method):
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
	if errors.Is(err, ErrProvider) {
		// Fails closed, and as the caller's problem (401), not Base B's:
		// a provider outage must not open the gateway's breakers on Base B
		// for the partners whose tokens are still verifiable.
		return nil, status.Error(codes.Unauthenticated, "the access token cannot be checked now: identity provider unavailable")
	}
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid access token")
	}
	if want := scopeFor(method); !slices.Contains(p.Scopes, want) {
		return nil, status.Errorf(codes.PermissionDenied, "token lacks scope %s", want)
	}
	if p, err = bind(ctx, md, method, p); err != nil {
		return nil, err
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

// httpClient is o's HTTP client (default: a 5 s timeout), through o's
// breaker when set.
func httpClient(o Options) *http.Client {
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
	return client
}

// discover fetches the issuer's discovery document, retrying every 500 ms
// until ctx ends (the provider may start after Base B).
func discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	for {
		provider, err := oidc.NewProvider(ctx, issuer)
		if err == nil {
			return provider, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("authz: discovery of %s: %w", issuer, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
