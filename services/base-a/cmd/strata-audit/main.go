// Command strata-audit lets auditors list, export and verify Base A's
// access log over mTLS.
package main

import (
	"context"

	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-a/app"
)

func main() {
	command.Main("strata-audit", func(ctx context.Context, e command.Env) error {
		return command.Exit(app.RunAuditCLI(ctx, e.Lookup, e.Args, e.Stdout, e.Stderr))
	})
}
