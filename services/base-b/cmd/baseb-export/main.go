// Command baseb-export streams Base B's ML features as CSV or JSON lines
// (token in BASEB_EXPORT_TOKEN, scope base-b:export).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/services/base-b/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunExport(ctx, config.Env(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseb-export:", err)
		os.Exit(1)
	}
}
