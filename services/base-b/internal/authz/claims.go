package authz

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-bureau/strata/pkg/config"
)

// Mapping turns whatever claims a provider puts in its tokens (or in its
// introspection answers) into a Principal: which claims hold permissions,
// which names the client, and which audiences are Base B's.
type Mapping struct {
	// ScopeClaims are read in order; the first that holds any Base B
	// permission (base-b:…) gives the token's scopes. A claim is a
	// space-separated string (scope, RFC 9068) or an array of strings
	// (scp, roles, groups); a dotted name reads a nested object
	// (realm_access.roles).
	ScopeClaims config.List `env:"OIDC_SCOPE_CLAIMS, default=scope,scp"`
	// ClientScopes are the scopes of a client whose tokens carry no Base B
	// permission in any ScopeClaims (providers that put none in tokens).
	ClientScopes ClientScopes `env:"OIDC_CLIENT_SCOPES"`
	// ClientClaims are read in order for the token's OAuth2 client; the
	// first non-empty string wins.
	ClientClaims config.List `env:"OIDC_CLIENT_CLAIM, default=client_id,azp,sub"`
	// Audiences: a token must name at least one in aud (string or array);
	// a token with no aud at all (Cognito) passes only if its client is
	// listed here. Providers that set aud to the client id need each
	// client id listed.
	Audiences config.List `env:"OIDC_AUDIENCE, default=strata-base-b"`
	// TokenTypes are the JWT header typ values accepted when typ is present
	// (compared without case and without an "application/" prefix). The
	// default, at+jwt (RFC 9068), never takes an ID token (typ JWT) for an
	// access token. Providers that label access tokens with the generic
	// "JWT" (ZITADEL, Keycloak) need it added here; such tokens must then
	// also carry none of an ID token's marks (see idTokenMarks).
	TokenTypes config.List `env:"OIDC_TOKEN_TYPES, default=at+jwt"`
}

// ClientScopes gives scopes to clients whose tokens carry none
// (BASEB_OIDC_CLIENT_SCOPES, "client=scope scope;client2=scope").
type ClientScopes map[string][]string

// UnmarshalText implements encoding.TextUnmarshaler, so configuration
// (pkg/config) decodes BASEB_OIDC_CLIENT_SCOPES into ClientScopes.
func (c *ClientScopes) UnmarshalText(b []byte) error {
	v, err := ParseClientScopes(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseClientScopes reads "client=scope scope;client2=scope".
func ParseClientScopes(s string) (ClientScopes, error) {
	out := ClientScopes{}
	for _, part := range strings.Split(s, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		id, scopes, ok := strings.Cut(part, "=")
		id = strings.TrimSpace(id)
		if !ok || id == "" || len(strings.Fields(scopes)) == 0 {
			return nil, errors.New("client scopes must be CLIENT=SCOPE SCOPE;CLIENT2=SCOPE")
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("client %q is listed twice in the client scopes", id)
		}
		out[id] = strings.Fields(scopes)
	}
	return out, nil
}

// lookup reads a possibly dotted claim name.
func lookup(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	var cur any = claims
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// values reads a claim as a list: a string is split on spaces, an array
// keeps its string items.
func values(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, i := range x {
			if s, ok := i.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return x
	}
	return nil
}

func isOurs(scope string) bool { return strings.HasPrefix(scope, "base-b:") }

// principal maps verified claims to a Principal.
func (m *Mapping) principal(claims map[string]any) (Principal, error) {
	var p Principal
	p.Subject, _ = claims["sub"].(string)
	for _, name := range m.ClientClaims {
		if s, ok := claims[name].(string); ok && s != "" {
			p.ClientID = s
			break
		}
	}
	if !m.audienceOK(claims["aud"]) {
		// Cognito's access tokens carry no aud at all, only client_id:
		// then the client itself must be listed among the audiences.
		if _, has := claims["aud"]; has || p.ClientID == "" || !slices.Contains(m.Audiences, p.ClientID) {
			return Principal{}, errors.New("the token is not for this audience")
		}
	}
	for _, name := range m.ScopeClaims {
		v, ok := lookup(claims, name)
		if !ok {
			continue
		}
		if vals := values(v); slices.ContainsFunc(vals, isOurs) {
			p.Scopes = vals
			return p, nil
		}
	}
	if p.ClientID != "" {
		p.Scopes = m.ClientScopes[p.ClientID]
	}
	return p, nil
}

func (m *Mapping) audienceOK(aud any) bool {
	for _, a := range values(aud) {
		if slices.Contains(m.Audiences, a) {
			return true
		}
	}
	return false
}

func normType(t string) string {
	return strings.TrimPrefix(strings.ToLower(strings.TrimSpace(t)), "application/")
}

// checkType enforces RFC 9068's typ: a JWT whose header names a type
// outside TokenTypes is refused, and one that is not explicitly at+jwt
// must carry none of an ID token's marks.
func (m *Mapping) checkType(headerTyp string, claims map[string]any) error {
	if headerTyp != "" && !slices.ContainsFunc(m.TokenTypes, func(t string) bool { return normType(t) == normType(headerTyp) }) {
		return fmt.Errorf("token type %q is not an access token type", headerTyp)
	}
	if normType(headerTyp) == "at+jwt" {
		return nil
	}
	return idTokenMarks(claims)
}

// idTokenMarks refuses claims only ID tokens carry: nonce, at_hash and
// c_hash (OpenID Connect Core §2, §3.1.3.6), Keycloak's typ "ID" and
// Cognito's token_use "id".
func idTokenMarks(claims map[string]any) error {
	for _, c := range []string{"nonce", "at_hash", "c_hash"} {
		if _, ok := claims[c]; ok {
			return fmt.Errorf("an ID token (claim %s) is not an access token", c)
		}
	}
	if t, ok := claims["typ"].(string); ok && !slices.Contains([]string{"bearer", "at+jwt"}, normType(t)) {
		return errors.New("the token's typ claim names no access token")
	}
	if u, ok := claims["token_use"].(string); ok && u != "access" {
		return errors.New("the token's token_use is not access")
	}
	return nil
}

// jwtHeader decodes the protected header of a compact JWS, or reports that
// raw is not one (then it may be an opaque token).
func jwtHeader(raw string) (typ string, ok bool) {
	first, rest, found := strings.Cut(raw, ".")
	if !found || strings.Count(rest, ".") != 1 || len(first) > 4096 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(first)
	if err != nil {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if json.Unmarshal(b, &h) != nil || h.Alg == "" {
		return "", false
	}
	return h.Typ, true
}
