// Package app is the local launcher behind `make run` and `make test`.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
	"github.com/strata-bureau/strata/pkg/pki"
)

// Config of `strata-local run`, from the environment (see README).
type Config struct {
	// DataDir keeps everything between runs (default .data).
	DataDir string
	// BinDir holds the service binaries built by make (default .data/bin).
	BinDir string
	// External servers replacing the embedded ones.
	DatabaseURL string
	MongoURI    string
	AMQPURL     string
	// AMQPCA is the CA bundle of an amqps:// AMQP_URL's certificate.
	AMQPCA       string
	OIDCIssuer   string
	OIDCAudience string
	// OIDC holds the other OIDC_* settings for Base B (see OIDCSettings),
	// passed on as BASEB_OIDC_*.
	OIDC map[string]string
	// GatewayAddr is where partners reach the gateway (default 127.0.0.1:8080).
	GatewayAddr string
	// PortOffset shifts every service port (tests run a second platform
	// beside a running one).
	PortOffset int
	// Overrides are extra VAR=value settings given to every service (each
	// reads only its own prefix): fault-injection tests use them to route a
	// hop through a proxy.
	Overrides []string
	// OTelResourceAttributes is the OTEL_RESOURCE_ATTRIBUTES the launcher
	// was given; each service gets it plus its own service.instance.id.
	// The other OTEL_* variables reach the services unchanged.
	OTelResourceAttributes string
	// DatabaseSuffix is appended to the name of every database the
	// platform uses (PostgreSQL's strata_basea and strata_gateway, Base B's
	// and Base C's Mongo databases): tests that start platforms one after
	// another on shared stores give each its own, so none reads a log
	// signed, or an account hashed, with another platform's keys.
	DatabaseSuffix string
	// TraceViewerAddr, when set, starts the local trace viewer there
	// (STRATA_TRACE_VIEWER=1 make run: 127.0.0.1:16686) and points every
	// service's OTLP trace exporter at it.
	TraceViewerAddr string
}

// DatabaseName is the name the platform gives database base (DatabaseSuffix
// appended).
func (c Config) DatabaseName(base string) string { return base + c.DatabaseSuffix }

// addr is a service's loopback address, shifted by PortOffset.
func (c Config) addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port+c.PortOffset) }

// Fixed local ports, chosen away from the defaults of system services so the
// private stores run beside any others.
const (
	postgresPort = 54329
	rabbitPort   = 56720 // +1 distribution, +2 epmd
	ferretAddr   = "127.0.0.1:27117"
)

// Run brings up the whole platform and keeps it up until ctx ends.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if err := prepareDataDir(&cfg); err != nil {
		return err
	}
	dataDir := cfg.DataDir
	logFile, err := os.OpenFile(filepath.Join(dataDir, "logs", "ferretdb.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	ferretLogger := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))

	started := time.Now()
	fmt.Fprintln(out, "strata-local: starting stores...")
	stores := &Stores{DatabaseURL: cfg.DatabaseURL, MongoURI: cfg.MongoURI, AMQPURL: cfg.AMQPURL, AMQPCA: cfg.AMQPCA}
	// The private broker speaks amqps with a certificate from the local
	// CA, as production brokers do; every service and the launcher use it.
	certs, err := localPKI(dataDir)
	if err != nil {
		return err
	}
	defer stores.Stop()
	if err := startStores(ctx, stores, dataDir, certs["rabbitmq"], ferretLogger, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "strata-local: stores ready in %s\n", time.Since(started).Round(100*time.Millisecond))
	fmt.Fprintf(out, "  postgres   %s\n", redact(stores.DatabaseURL))
	fmt.Fprintf(out, "  rabbitmq   %s\n", redact(stores.AMQPURL))
	fmt.Fprintf(out, "  mongo-wire %s\n", redact(stores.MongoURI))

	if cfg.TraceViewerAddr != "" {
		if err := startTraceViewer(ctx, &cfg, out); err != nil {
			return err
		}
	}
	plat, err := startServices(ctx, cfg, stores, out)
	if plat != nil {
		defer plat.stop(out)
	}
	if err != nil {
		return err
	}
	if err := seedEvents(ctx, plat.broker.url["strata-ingest"], stores.AMQPCA); err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	if err := writeDemoEnv(filepath.Join(dataDir, "demo.env"), plat.demoEnv); err != nil {
		return err
	}
	plat.printTour(out, filepath.Join(dataDir, "demo.env"))
	fmt.Fprintf(out, "strata-local: up in %s; logs in %s; Ctrl-C stops everything.\n",
		time.Since(started).Round(100*time.Millisecond), filepath.Join(dataDir, "logs"))

	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nstrata-local: stopping...")
		return nil
	case p := <-plat.exited:
		return fmt.Errorf("%s exited unexpectedly (%v); see %s", p.Name, p.Err(), filepath.Join(dataDir, "logs", p.Name+".log"))
	}
}

// prepareDataDir fills cfg's defaults, makes its directories absolute and
// creates the data and log directories.
func prepareDataDir(cfg *Config) error {
	if cfg.DataDir == "" {
		cfg.DataDir = ".data"
	}
	if cfg.BinDir == "" {
		cfg.BinDir = filepath.Join(cfg.DataDir, "bin")
	}
	if cfg.GatewayAddr == "" {
		cfg.GatewayAddr = "127.0.0.1:8080"
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = dataDir
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "logs"), 0o755); err != nil {
		return err
	}
	// PostgreSQL and RabbitMQ run as their own users and must reach their
	// directories below this one.
	return os.Chmod(dataDir, 0o755)
}

// startStores starts, side by side, the private stores that stores has no
// outside URL for, and records them in stores (the caller stops them).
func startStores(ctx context.Context, stores *Stores, dataDir string, rabbitTLS pki.Files, ferretLogger *slog.Logger, out io.Writer) error {
	errc := make(chan error, 3)
	n := 0
	if stores.DatabaseURL == "" {
		n++
		go func() {
			pg, err := stack.StartPostgres(ctx, stack.PostgresOptions{Dir: filepath.Join(dataDir, "postgres"), Port: postgresPort, Out: out})
			if err == nil {
				stores.Postgres, stores.DatabaseURL = pg, pg.URL
			}
			errc <- wrap("postgres", err)
		}()
	}
	if stores.AMQPURL == "" {
		n++
		go func() {
			r, err := stack.StartRabbitMQ(ctx, stack.RabbitOptions{Dir: filepath.Join(dataDir, "rabbitmq"), Port: rabbitPort, Out: out,
				TLS: &rabbitTLS, TLSPort: rabbitPort + 3})
			if err == nil {
				stores.Rabbit, stores.AMQPURL, stores.AMQPCA = r, r.TLSURL, rabbitTLS.CA
			}
			errc <- wrap("rabbitmq", err)
		}()
	}
	if stores.MongoURI == "" {
		n++
		go func() {
			f, err := stack.StartFerret(ctx, filepath.Join(dataDir, "ferretdb"), ferretAddr, ferretLogger)
			if err == nil {
				stores.Ferret, stores.MongoURI = f, f.URI
			}
			errc <- wrap("ferretdb", err)
		}()
	}
	var errs []error
	for range n {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startTraceViewer starts the local trace viewer at cfg.TraceViewerAddr and
// points every service's trace exporter at it.
func startTraceViewer(ctx context.Context, cfg *Config, out io.Writer) error {
	u, err := StartTraceViewer(ctx, cfg.TraceViewerAddr, &TraceViewer{})
	if err != nil {
		return err
	}
	// Later settings win: these replace any OTEL_TRACES_EXPORTER the
	// launcher was given.
	cfg.Overrides = append(cfg.Overrides, "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+u+"/v1/traces")
	fmt.Fprintf(out, "  traces     %s (every service exports its spans here)\n", u)
	return nil
}

func wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// redact hides the password of a URL for printing.
func redact(raw string) string {
	i := strings.Index(raw, "://")
	at := strings.LastIndex(raw, "@")
	if i < 0 || at < i {
		return raw
	}
	userinfo := raw[i+3 : at]
	if c := strings.IndexByte(userinfo, ':'); c >= 0 {
		return raw[:i+3] + userinfo[:c] + ":***" + raw[at:]
	}
	return raw
}

// writeDemoEnv writes the demo credentials in shell syntax, readable by the
// owner only.
func writeDemoEnv(path string, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by `make run`: demo credentials for the local stack.\n# Use with: . .data/demo.env\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
