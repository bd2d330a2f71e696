// Command basea-seed adds N synthetic people to Base A for scale tests
// (strata-local seed -cpfs N runs it with Base A's settings).
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
	err := app.RunSeed(ctx, config.Env(), os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "basea-seed:", err)
		os.Exit(1)
	}
}
