// Command base-a serves Base A: CPF, name, address and debts behind
// short-lived scoped grants, over mTLS, with a tamper-evident audit log.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/services/base-a/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "base-a:", err)
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
		return fmt.Errorf("unknown command %q (usage: base-a [migrate])", os.Args[1])
	}
	cfg, err := app.Load(ctx, config.Env())
	if err != nil {
		return err
	}
	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg, logging.New(os.Stdout, level, "base-a"))
}
