package app_test

import (
	"context"
	"maps"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/services/gateway/app"
)

// mTLS to the bases stays mandatory: the gateway does not start without
// its client certificate, key and CA (tests reach fake bases through
// backend.Options.Dialer, which app never sets).
func TestTheBasesAreReachedOnlyWithMutualTLS(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"GATEWAY_DATABASE_URL": "postgres://x", "GATEWAY_KEY_PEPPER": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
		"GATEWAY_ISSUER_ENABLED": "false", "GATEWAY_TLS_CERT": "c", "GATEWAY_TLS_KEY": "k", "GATEWAY_TLS_CA": "a", "GATEWAY_AMQP_URL": "amqp://x",
	}
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
