package app_test

import (
	"testing"

	"github.com/strata-bureau/strata/pkg/config/configtest"
	"github.com/strata-bureau/strata/services/base-c/app"
)

// Base C's environment contract (README Configuration) is
// testdata/env.golden: every variable, its default, the required ones.
func TestEnvironmentIsTheGolden(t *testing.T) {
	t.Parallel()
	configtest.Golden(t, app.Prefix, map[string]string{"BASEC_TLS_CERT": "c", "BASEC_TLS_KEY": "k", "BASEC_TLS_CA": "ca",
		"BASEC_AMQP_URL": "amqp://x", "BASEC_MONGODB_URI": "mongodb://x", "BASEC_REPLICA_ID": "r1"}, app.Load, "testdata/env.golden")
}
