// Command basea-seed adds N synthetic people to Base A for scale tests
// (strata-local seed -cpfs N runs it with Base A's settings).
package main

import (
	"context"

	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-a/app"
)

func main() {
	command.Main("basea-seed", func(ctx context.Context, e command.Env) error {
		return app.RunSeed(ctx, e.Lookup, e.Args, e.Stdout)
	})
}
