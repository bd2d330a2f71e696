package app_test

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/config/configtest"
	"github.com/strata-bureau/strata/services/gateway/app"
)

// mTLS to the bases stays mandatory: the gateway does not start without
// its client certificate, key and CA (tests reach fake bases through
// backend.Options.Dialer, which app never sets).
func TestTheBasesAreReachedOnlyWithMutualTLS(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	if _, err := app.Load(context.Background(), config.Map(env)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"GATEWAY_TLS_CERT", "GATEWAY_TLS_KEY", "GATEWAY_TLS_CA"} {
		without := maps.Clone(env)
		delete(without, k)
		if _, err := app.Load(context.Background(), config.Map(without)); err == nil {
			t.Errorf("the gateway loads without %s", k)
		}
	}
}

// The settings with a grammar of their own are decoded by the
// configuration: a malformed one stops the gateway at load with the
// variable's name and what is wrong; a good one arrives parsed.
func TestStructuredSettingsAreDecodedAtLoad(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	env["GATEWAY_TRUSTED_PROXIES"], env["GATEWAY_AMQP_PRODUCERS"] = "10.0.0.0/8, 192.0.2.1", "audit.checkpoint.signed=base-a|other"
	cfg, err := app.Load(context.Background(), config.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.TrustedProxies) != 2 || cfg.TrustedProxies[1].String() != "192.0.2.1/32" || !cfg.AMQPProducers.Admits("audit.checkpoint.signed", "other") {
		t.Fatalf("decoded: %v %v", cfg.TrustedProxies, cfg.AMQPProducers)
	}
	for k, v := range map[string]string{
		"GATEWAY_TRUSTED_PROXIES": `GATEWAY_TRUSTED_PROXIES: trusted proxy "10.0.0.0/33" is not an address or CIDR`,
		"GATEWAY_AMQP_PRODUCERS":  `GATEWAY_AMQP_PRODUCERS: producers: "10.0.0.0/33" is not type=user|user`,
	} {
		bad := maps.Clone(env)
		bad[k] = "10.0.0.0/33"
		if _, err := app.Load(context.Background(), config.Map(bad)); err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("%s: want %q, got %v", k, v, err)
		}
	}
}

// The gateway's environment contract (README Configuration):
// testdata/env.golden lists every variable, its default, the required ones.
func TestEnvironmentIsTheGolden(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	delete(env, "GATEWAY_ISSUER_ENABLED") // its default, with the keys it needs
	env["GATEWAY_ISSUER_KEYS"] = "1:k"
	configtest.Golden(t, app.Prefix, env, app.Load, "testdata/env.golden")
}

// minimalEnv is the least a gateway loads with.
func minimalEnv() map[string]string {
	return map[string]string{
		"GATEWAY_DATABASE_URL": "postgres://x", "GATEWAY_KEY_PEPPER": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
		"GATEWAY_ISSUER_ENABLED": "false", "GATEWAY_TLS_CERT": "c", "GATEWAY_TLS_KEY": "k", "GATEWAY_TLS_CA": "a", "GATEWAY_AMQP_URL": "amqp://x",
	}
}
