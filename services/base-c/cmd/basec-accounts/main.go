// Command basec-accounts creates, rotates and disables Base C's basic-auth
// accounts. Passwords are read from standard input.
package main

import (
	"context"

	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-c/app"
)

func main() {
	command.Main("basec-accounts", func(ctx context.Context, e command.Env) error {
		return app.RunAccounts(ctx, e.Lookup, e.Args, e.Stdin, e.Stdout)
	})
}
