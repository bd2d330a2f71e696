package app_test

import (
	"testing"

	"github.com/strata-bureau/strata/pkg/config/configtest"
	"github.com/strata-bureau/strata/services/base-a/app"
)

// Base A's variables, defaults and required ones (an operator contract,
// README Configuration) are testdata/env.golden.
func TestEnvironmentIsTheGolden(t *testing.T) {
	t.Parallel()
	configtest.Golden(t, app.Prefix, map[string]string{
		"BASEA_DATABASE_URL": "postgres://x", "BASEA_DATA_KEYS": "1:k", "BASEA_BLIND_INDEX_KEY": "b", "BASEA_AUDIT_CHAIN_KEY": "c",
		"BASEA_AUDIT_SIGNING_KEY": "s", "BASEA_TLS_CERT": "c", "BASEA_TLS_KEY": "k", "BASEA_TLS_CA": "ca", "BASEA_AMQP_URL": "amqp://x",
	}, app.Load, "testdata/env.golden")
}
