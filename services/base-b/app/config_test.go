package app_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/config/configtest"
	"github.com/strata-bureau/strata/services/base-b/app"
)

// Base B's variables, their defaults and which are required are an
// operator contract (README, Configuration): testdata/env.golden holds it.
func TestEnvironmentIsTheGolden(t *testing.T) {
	t.Parallel()
	configtest.Golden(t, app.Prefix, minimalEnv(), app.Load, "testdata/env.golden")
}

// minimalEnv is the least Base B loads with.
func minimalEnv() map[string]string {
	return map[string]string{
		"BASEB_TLS_CERT": "c", "BASEB_TLS_KEY": "k", "BASEB_TLS_CA": "ca", "BASEB_AMQP_URL": "amqp://x",
		"BASEB_MONGODB_URI": "mongodb://x", "BASEB_OIDC_ISSUER": "https://issuer", "BASEB_REPLICA_ID": "r1",
	}
}

// Every check of the settings, with its message as an operator reads it.
func TestEverySettingCheckNamesItsVariable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := minimalEnv()
	maps.Copy(env, map[string]string{"BASEB_REPLICA_ID": "bad id", "BASEB_OPS_ADDR": "x", "BASEB_GRPC_ADDR": "y",
		"BASEB_TOKEN_LEEWAY": "6m", "BASEB_OIDC_AUDIENCE": " , ", "BASEB_OIDC_INTROSPECTION": "maybe",
		"BASEB_PROFILE_CACHE_SIZE": "0", "BASEB_OIDC_TIMEOUT": "0s", "BASEB_PROCESSED_RETENTION": "-1h",
		"BASEB_OIDC_TOKEN_TYPES": ""})
	got := configtest.Refusals(t, app.Prefix, env, app.Load)
	want := []string{
		"GRPC_ADDR must be host:port",
		"OIDC_AUDIENCE must name at least one audience",
		"OIDC_CACHE_TTL, OIDC_NEGATIVE_CACHE_TTL, OIDC_CACHE_SIZE and OIDC_TIMEOUT must be positive",
		"OIDC_INTROSPECTION must be auto, on or off",
		"OIDC_SCOPE_CLAIMS, OIDC_CLIENT_CLAIM and OIDC_TOKEN_TYPES must each name at least one",
		"OPS_ADDR must be host:port",
		"PROCESSED_RETENTION must be positive",
		"PROFILE_CACHE_SIZE must be positive and PROFILE_CACHE_TTL not negative",
		"REPLICA_ID must be 1-64 letters, digits and . _ @ -",
		"TOKEN_LEEWAY must be 0 to 5m",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	env = minimalEnv()
	env["BASEB_OIDC_INTROSPECTION"] = "on"
	if _, err := app.Load(context.Background(), config.Map(env)); err == nil || !strings.Contains(err.Error(), "OIDC_INTROSPECTION=on needs OIDC_CLIENT_ID and its secret") {
		t.Errorf("introspection on without a client: %v", err)
	}
	env["BASEB_OIDC_CLIENT_ID"], env["BASEB_OIDC_CLIENT_SECRET"], env["BASEB_OIDC_CLIENT_SECRET_FILE"] = "strata-base-b", "s", secret
	if _, err := app.Load(context.Background(), config.Map(env)); err == nil || !strings.Contains(err.Error(), "set OIDC_CLIENT_SECRET or OIDC_CLIENT_SECRET_FILE, not both") {
		t.Errorf("a secret and its file: %v", err)
	}
	delete(env, "BASEB_OIDC_CLIENT_SECRET")
	cfg, err := app.Load(context.Background(), config.Map(env))
	if err != nil || cfg.Verifier.ClientSecret.Reveal() != "s3cret" {
		t.Fatalf("secret from a file: %v", err)
	}
}

// A setting given as zero is zero: TOKEN_LEEWAY=0 loads as no leeway and
// passes the checks (authz.TestZeroLeewayIsNoLeeway: the verifier keeps it).
func TestZeroLeewayLoadsAsZero(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	env["BASEB_TOKEN_LEEWAY"] = "0"
	cfg, err := app.Load(context.Background(), config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Verifier.Leeway != 0 {
		t.Fatalf("TOKEN_LEEWAY=0 loaded as %s", cfg.Verifier.Leeway)
	}
}
