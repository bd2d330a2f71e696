package app_test

import (
	"bytes"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-a/app"
)

// basea-seed adds the synthetic people 0..N-1 and, run again, leaves them
// as they are.
func TestSeedAddsTheSyntheticPeopleOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vars := map[string]string{}
	for k, v := range e.vars {
		vars[k] = v
	}
	vars["BASEA_DATABASE_URL"] = e.appURL
	for range 2 {
		var out bytes.Buffer
		if err := app.RunSeed(testenv.Context(t), config.Map(vars), []string{"-cpfs", "3"}, &out); err != nil {
			t.Fatalf("%v (output %q)", err, out.String())
		}
	}
	var n int64
	e.queryRow(`SELECT count(*) FROM people`, nil, &n)
	if n != 3 {
		t.Fatalf("%d synthetic people after two runs of -cpfs 3, want 3", n)
	}
}
