// Command strata-audit lets auditors list, export and verify Base A's
// access log over mTLS.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/services/base-a/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.RunAuditCLI(ctx, config.Env(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
