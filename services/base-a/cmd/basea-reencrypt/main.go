// Command basea-reencrypt moves Base A's encrypted rows to the newest data
// key in BASEA_DATA_KEYS, with progress.
package main

import (
	"context"

	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-a/app"
)

func main() {
	command.Main("basea-reencrypt", func(ctx context.Context, e command.Env) error {
		return app.RunReencrypt(ctx, e.Lookup, e.Stdout)
	})
}
