package authz

import (
	"errors"
	"time"

	"github.com/strata-bureau/strata/pkg/config"
)

// Config is how Base B checks access tokens. Base B's Config embeds it,
// so its variables carry Base B's prefix (BASEB_OIDC_ISSUER, …). The tags
// hold the only defaults: loading gives them to variables left unset, and
// config.Defaults to the zero settings of a Config built in code.
type Config struct {
	Issuer string `env:"OIDC_ISSUER, required"`
	// Mapping: the audiences a token must name one of, and the claims that
	// hold its permissions and its client.
	Mapping
	// Introspection: auto (opaque tokens only), on (every token) or off.
	Introspection string `env:"OIDC_INTROSPECTION, default=auto"`
	// IntrospectionURL overrides the discovered introspection_endpoint.
	IntrospectionURL string `env:"OIDC_INTROSPECTION_URL"`
	// ClientID and ClientSecret authenticate Base B to the provider's
	// introspection endpoint (client_secret_basic); the secret may come
	// from the file OIDC_CLIENT_SECRET_FILE names (config.Load).
	ClientID     string        `env:"OIDC_CLIENT_ID"`
	ClientSecret config.Secret `env:"OIDC_CLIENT_SECRET"`
	// CacheTTL bounds how long an active introspection answer is reused
	// (never past the token's exp); NegativeTTL is how long a refused
	// token is remembered; CacheSize bounds each cache; Timeout is the
	// deadline of one introspection request.
	CacheTTL    time.Duration `env:"OIDC_CACHE_TTL, default=2m"`
	NegativeTTL time.Duration `env:"OIDC_NEGATIVE_CACHE_TTL, default=30s"`
	CacheSize   int           `env:"OIDC_CACHE_SIZE, default=10000"`
	Timeout     time.Duration `env:"OIDC_TIMEOUT, default=3s"`
	// Leeway is tolerated on a JWT's expiry.
	Leeway time.Duration `env:"TOKEN_LEEWAY, default=30s"`
}

// Validate checks the settings; its messages name the variables. Base B's
// Validate and NewVerifier call it.
func (c *Config) Validate() error {
	var errs []error
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		errs = append(errs, errors.New("TOKEN_LEEWAY must be 0 to 5m"))
	}
	if len(c.Audiences) == 0 {
		errs = append(errs, errors.New("OIDC_AUDIENCE must name at least one audience"))
	}
	// Set but empty, these used to take their defaults; now a setting is
	// what it says, and none of them can be empty.
	if len(c.ScopeClaims) == 0 || len(c.ClientClaims) == 0 || len(c.TokenTypes) == 0 {
		errs = append(errs, errors.New("OIDC_SCOPE_CLAIMS, OIDC_CLIENT_CLAIM and OIDC_TOKEN_TYPES must each name at least one"))
	}
	switch c.Introspection {
	case IntrospectAuto, IntrospectOn, IntrospectOff:
	default:
		errs = append(errs, errors.New("OIDC_INTROSPECTION must be auto, on or off"))
	}
	if c.Introspection == IntrospectOn && c.ClientID == "" {
		errs = append(errs, errors.New("OIDC_INTROSPECTION=on needs OIDC_CLIENT_ID and its secret"))
	}
	if c.CacheTTL <= 0 || c.NegativeTTL <= 0 || c.CacheSize < 1 || c.Timeout <= 0 {
		errs = append(errs, errors.New("OIDC_CACHE_TTL, OIDC_NEGATIVE_CACHE_TTL, OIDC_CACHE_SIZE and OIDC_TIMEOUT must be positive"))
	}
	return errors.Join(errs...)
}
