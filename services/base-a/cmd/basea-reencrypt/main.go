// Command basea-reencrypt moves Base A's encrypted rows to the newest data
// key in BASEA_DATA_KEYS, with progress.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/services/base-a/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunReencrypt(ctx, config.Env(), os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "basea-reencrypt:", err)
		os.Exit(1)
	}
}
