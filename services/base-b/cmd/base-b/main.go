// Command base-b serves Base B: profiles, credit scores and the ML feature
// export, behind OAuth2 access tokens it verifies itself.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/services/base-b/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "base-b:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := app.Load(ctx, config.Env())
	if err != nil {
		return err
	}
	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg, logging.New(os.Stdout, level, "base-b"))
}
