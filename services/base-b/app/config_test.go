package app_test

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/services/base-b/app"
)

// OIDC_CLIENT_SCOPES and AMQP_PRODUCERS are decoded by the configuration:
// a malformed value stops Base B at load with the variable's name.
func TestStructuredSettingsAreDecodedAtLoad(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"BASEB_MONGODB_URI": "mongodb://x", "BASEB_OIDC_ISSUER": "https://issuer.example",
		"BASEB_TLS_CERT": "c", "BASEB_TLS_KEY": "k", "BASEB_TLS_CA": "a", "BASEB_AMQP_URL": "amqp://x",
		"BASEB_OIDC_CLIENT_SCOPES": "bank-a-app = base-b:read base-b:export; bank-b-app=base-b:read",
	}
	cfg, err := app.Load(context.Background(), config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.OIDCClientScopes["bank-a-app"], " ") != "base-b:read base-b:export" || !cfg.AMQPProducers.Admits("debt.summary.changed", "base-a") {
		t.Fatalf("decoded: %v %v", cfg.OIDCClientScopes, cfg.AMQPProducers)
	}
	for k, v := range map[string]string{
		"BASEB_OIDC_CLIENT_SCOPES": "BASEB_OIDC_CLIENT_SCOPES: client scopes must be CLIENT=SCOPE SCOPE;CLIENT2=SCOPE",
		"BASEB_AMQP_PRODUCERS":     `BASEB_AMQP_PRODUCERS: producers: "bank-a-app" is not type=user|user`,
	} {
		bad := maps.Clone(env)
		bad[k] = "bank-a-app"
		if _, err := app.Load(context.Background(), config.Map(bad)); err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("%s: want %q, got %v", k, v, err)
		}
	}
}
