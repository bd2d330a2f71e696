package app_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/config/configtest"
	"github.com/strata-bureau/strata/services/base-c/app"
)

// Base C's environment contract (README Configuration) is
// testdata/env.golden: every variable, its default, the required ones.
func TestEnvironmentIsTheGolden(t *testing.T) {
	t.Parallel()
	configtest.Golden(t, app.Prefix, minimalEnv(), app.Load, "testdata/env.golden")
}

// minimalEnv is the least Base C loads with.
func minimalEnv() map[string]string {
	return map[string]string{"BASEC_TLS_CERT": "c", "BASEC_TLS_KEY": "k", "BASEC_TLS_CA": "ca",
		"BASEC_AMQP_URL": "amqp://x", "BASEC_MONGODB_URI": "mongodb://x", "BASEC_REPLICA_ID": "r1"}
}

// Every check of Base C's own settings, with its message as an operator
// reads it. A zero or negative throttle, cache or retention setting used
// to mean its default without a word (THROTTLE_FREE=0 gave three free
// failures); it is refused now.
func TestEverySettingCheckNamesItsVariable(t *testing.T) {
	t.Parallel()
	positive := "AUTH_CACHE_TTL, THROTTLE_BASE, THROTTLE_MAX, THROTTLE_HALF_LIFE and PROCESSED_RETENTION must be positive"
	atLeastOne := "THROTTLE_FREE, SOURCE_FAILURE_LIMIT, ACTIVITY_CACHE_SIZE and LATEST_MOVEMENTS must be 1 or more"
	for name, c := range map[string]struct{ bad, want string }{
		"AUTH_CACHE_TTL": {"0s", positive}, "THROTTLE_BASE": {"-1s", positive}, "THROTTLE_MAX": {"0s", positive},
		"THROTTLE_HALF_LIFE": {"0s", positive}, "PROCESSED_RETENTION": {"-1h", positive},
		"THROTTLE_FREE": {"0", atLeastOne}, "SOURCE_FAILURE_LIMIT": {"-1", atLeastOne},
		"ACTIVITY_CACHE_SIZE": {"0", atLeastOne}, "LATEST_MOVEMENTS": {"0", atLeastOne},
	} {
		env := minimalEnv()
		env["BASEC_"+name] = c.bad
		if got := configtest.Refusals(t, app.Prefix, env, app.Load); !slices.Equal(got, []string{c.want}) {
			t.Errorf("%s=%s: %q", name, c.bad, got)
		}
	}
	env := minimalEnv()
	maps.Copy(env, map[string]string{"BASEC_AUTH_MAX_COLD": "0", "BASEC_BOOTSTRAP_USER": "demo", "BASEC_ARGON2_MEMORY_KIB": "1024"})
	got := configtest.Refusals(t, app.Prefix, env, app.Load)
	want := []string{
		"ARGON2_MEMORY_KIB/ARGON2_TIME below OWASP's minimum (19456 KiB, t=2)",
		"AUTH_MAX_COLD must be 1..64",
		"BOOTSTRAP_USER and BOOTSTRAP_PASSWORD go together",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := app.Load(context.Background(), config.Map(minimalEnv())); err != nil {
		t.Errorf("the defaults are refused: %v", err)
	}
}
