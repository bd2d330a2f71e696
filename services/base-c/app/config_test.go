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
	for name, bad := range map[string]string{"AUTH_CACHE_TTL": "0s", "THROTTLE_BASE": "-1s", "THROTTLE_MAX": "0s",
		"THROTTLE_HALF_LIFE": "0s", "PROCESSED_RETENTION": "-1h"} {
		env := minimalEnv()
		env["BASEC_"+name] = bad
		_, err := app.Load(context.Background(), config.Map(env))
		if want := "AUTH_CACHE_TTL, THROTTLE_BASE, THROTTLE_MAX, THROTTLE_HALF_LIFE and PROCESSED_RETENTION must be positive"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: %v", name, bad, err)
		}
	}
	for _, name := range []string{"THROTTLE_FREE", "SOURCE_FAILURE_LIMIT", "ACTIVITY_CACHE_SIZE", "LATEST_MOVEMENTS"} {
		env := minimalEnv()
		env["BASEC_"+name] = "0"
		_, err := app.Load(context.Background(), config.Map(env))
		if want := "THROTTLE_FREE, SOURCE_FAILURE_LIMIT, ACTIVITY_CACHE_SIZE and LATEST_MOVEMENTS must be 1 or more"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=0: %v", name, err)
		}
	}
	env := minimalEnv()
	maps.Copy(env, map[string]string{"BASEC_AUTH_MAX_COLD": "0", "BASEC_BOOTSTRAP_USER": "demo", "BASEC_ARGON2_MEMORY_KIB": "1024"})
	_, err := app.Load(context.Background(), config.Map(env))
	if err == nil {
		t.Fatal("loaded")
	}
	got := strings.Split(strings.TrimPrefix(err.Error(), "config (BASEC_*): "), "\n")
	slices.Sort(got)
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
