// Command strata-local runs Strata on one machine.
//
//	strata-local run                 the whole platform (make run)
//	strata-local test-env -- CMD...  private stores for CMD (make test)
//	strata-local seed -cpfs N        N synthetic CPFs in every base (scale tests)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-bureau/strata/deploy/local/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		cfg := app.Config{
			DataDir:      os.Getenv("STRATA_DATA_DIR"),
			BinDir:       os.Getenv("STRATA_BIN_DIR"),
			DatabaseURL:  os.Getenv("DATABASE_URL"),
			MongoURI:     os.Getenv("MONGODB_URI"),
			AMQPURL:      os.Getenv("AMQP_URL"),
			AMQPCA:       os.Getenv("AMQP_CA"),
			OIDCIssuer:   os.Getenv("OIDC_ISSUER"),
			OIDCAudience: os.Getenv("OIDC_AUDIENCE"),
			GatewayAddr:  os.Getenv("STRATA_GATEWAY_ADDR"),

			OTelResourceAttributes: os.Getenv("OTEL_RESOURCE_ATTRIBUTES"),
			TraceViewerAddr:        traceViewerAddr(os.Getenv("STRATA_TRACE_VIEWER")),
			OIDC:                   map[string]string{},
		}
		for _, name := range app.OIDCSettings {
			cfg.OIDC[name] = os.Getenv("OIDC_" + name)
		}
		if err := app.Run(ctx, cfg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "strata-local:", err)
			return 1
		}
		return 0
	case "seed":
		fs := flag.NewFlagSet("seed", flag.ContinueOnError)
		n := fs.Int("cpfs", 0, "number of synthetic CPFs to add to every base (idempotent)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		cfg := app.SeedConfig{DataDir: os.Getenv("STRATA_DATA_DIR"), BinDir: os.Getenv("STRATA_BIN_DIR"),
			DatabaseURL: os.Getenv("DATABASE_URL"), MongoURI: os.Getenv("MONGODB_URI"), CPFs: *n}
		if err := app.Seed(ctx, cfg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "strata-local:", err)
			return 1
		}
		return 0
	case "test-env":
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		cfg := app.TestEnvConfig{
			DatabaseURL: os.Getenv("STRATA_TEST_DATABASE_URL"),
			MongoURI:    os.Getenv("STRATA_TEST_MONGODB_URI"),
			AMQPURL:     os.Getenv("STRATA_TEST_AMQP_URL"),
			Keep:        os.Getenv("STRATA_TEST_KEEP") == "1",
			PprofAddr:   os.Getenv("STRATA_TEST_PPROF"),
		}
		code, err := app.TestEnv(ctx, cfg, args, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "strata-local:", err)
		}
		return code
	default:
		fmt.Fprintf(os.Stderr, "strata-local: unknown command %q\nusage: strata-local run | strata-local test-env -- COMMAND... | strata-local seed -cpfs N\n", cmd)
		return 2
	}
}

// traceViewerAddr: STRATA_TRACE_VIEWER=1 starts the trace viewer on
// 127.0.0.1:16686; any other non-empty value is the address to use.
func traceViewerAddr(v string) string {
	switch v {
	case "", "0", "false":
		return ""
	case "1", "true":
		return "127.0.0.1:16686"
	}
	return v
}
