// Command gateway serves Strata's public HTTP/JSON gateway: API keys, limits,
// the built-in OAuth2 issuer, and calls to the three bases.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/services/gateway/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		// Applies the schema as the owner role (MIGRATE_DATABASE_URL);
		// the long-running service never holds those credentials.
		return app.RunMigrate(ctx, config.Env())
	}
	if len(os.Args) > 1 {
		return fmt.Errorf("unknown command %q (usage: gateway [migrate])", os.Args[1])
	}
	cfg, err := app.Load(ctx, config.Env())
	if err != nil {
		return err
	}
	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg, logging.New(os.Stdout, level, "gateway"))
}
