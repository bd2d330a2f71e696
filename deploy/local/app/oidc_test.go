package app

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-bureau/strata/pkg/testenv"
)

// With an external provider, make run turns the built-in issuer off and
// hands Base B every OIDC setting it was given.
func TestExternalProviderSettingsReachBaseB(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, GatewayAddr: "127.0.0.1:8080", OIDCIssuer: "https://idp.example/realms/strata", OIDCAudience: "bank-a-app,bank-b-app",
		OIDC: map[string]string{"CLIENT_SCOPES": "bank-a-app=base-b:read", "SCOPE_CLAIMS": "scope,realm_access.roles",
			"INTROSPECTION": "on", "CLIENT_ID": "strata-base-b", "CLIENT_SECRET_FILE": "/run/secrets/idp", "TOKEN_TYPES": ""}}
	list, err := specs(cfg, &Stores{DatabaseURL: testenv.PostgresAdminURL(t), MongoURI: "mongodb://x", AMQPURL: "amqp://x"},
		&secretStore{dir: filepath.Join(dir, "secrets")}, &broker{url: map[string]string{}, user: map[string]string{}}, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string][]string{}
	for _, s := range list {
		env[s.name] = s.env(1)
	}
	for _, want := range []string{"BASEB_OIDC_ISSUER=https://idp.example/realms/strata", "BASEB_OIDC_AUDIENCE=bank-a-app,bank-b-app",
		"BASEB_OIDC_CLIENT_SCOPES=bank-a-app=base-b:read", "BASEB_OIDC_SCOPE_CLAIMS=scope,realm_access.roles",
		"BASEB_OIDC_INTROSPECTION=on", "BASEB_OIDC_CLIENT_ID=strata-base-b", "BASEB_OIDC_CLIENT_SECRET_FILE=/run/secrets/idp"} {
		if !slices.Contains(env["base-b"], want) {
			t.Errorf("base-b lacks %s: %v", want, env["base-b"])
		}
	}
	for _, v := range env["base-b"] {
		if v == "BASEB_OIDC_TOKEN_TYPES=" {
			t.Error("an empty setting replaced Base B's default")
		}
	}
	if !slices.Contains(env["gateway"], "GATEWAY_ISSUER_ENABLED=false") {
		t.Errorf("the built-in issuer is still on: %v", env["gateway"])
	}
}
