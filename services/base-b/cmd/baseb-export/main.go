// Command baseb-export streams Base B's ML features as CSV or JSON lines
// (token in BASEB_EXPORT_TOKEN, scope base-b:export).
package main

import (
	"context"

	"github.com/strata-bureau/strata/pkg/command"
	"github.com/strata-bureau/strata/services/base-b/app"
)

func main() {
	command.Main("baseb-export", func(ctx context.Context, e command.Env) error {
		return app.RunExport(ctx, e.Lookup, e.Args, e.Stdout, e.Stderr)
	})
}
