package authz

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/config"
)

// Every token and introspection answer is outside input: whatever its
// shape, mapping it must not panic, and nothing without Base B's audience
// and an exp ever passes.
func FuzzClaimsMapping(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"aud":["strata-base-b"],"scope":"base-b:read","client_id":"c","exp":9999999999}`,
		`{"active":true,"aud":"strata-base-b","scp":["base-b:read"],"realm_access":{"roles":[1,"base-b:read"]},"exp":1e300}`,
		`{"active":true,"typ":"ID","nonce":null,"token_use":7,"exp":-1}`,
		`{"aud":[null,{}],"roles":"base-b:read base-b:write","azp":5}`,
		`{"client_id":"strata-base-b","scope":"base-b:read","exp":1}`,
	} {
		f.Add(s, "eyJhbGciOiJSUzI1NiJ9.e30.sig")
	}
	m := Mapping{ScopeClaims: []string{"scope", "scp", "realm_access.roles", "roles"}, ClientScopes: map[string][]string{"c": {"base-b:read"}},
		Audiences: []string{"strata-base-b"}}
	if err := config.Defaults(context.Background(), &m); err != nil {
		f.Fatal(err)
	}
	in := newIntrospector(introspectorOptions{Config: Config{Issuer: "https://idp.example"}, now: time.Now})
	f.Fuzz(func(t *testing.T, body, raw string) {
		_, _ = jwtHeader(raw)
		_, _ = ParseClientScopes(body)
		var claims map[string]any
		if json.Unmarshal([]byte(body), &claims) != nil || claims == nil {
			return
		}
		_ = m.checkType("JWT", claims)
		_, hasAud := claims["aud"]
		if p, err := m.principal(claims); err == nil && !m.audienceOK(claims["aud"]) && (hasAud || !slices.Contains(m.Audiences, p.ClientID)) {
			t.Fatalf("principal %+v without our audience", p)
		}
		if p, err := in.principal(claims, &m); err == nil && (p.Expiry.IsZero() || claims["active"] != true) {
			t.Fatalf("introspection answer accepted without exp or active: %+v", p)
		}
	})
}
