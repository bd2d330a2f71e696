package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
)

// TestEnvConfig configures the test environment.
type TestEnvConfig struct {
	// Existing servers to use instead of private ones (may be empty).
	DatabaseURL string
	MongoURI    string
	AMQPURL     string
	// Dir holds the private instances; removed afterwards unless Keep.
	Dir  string
	Keep bool
}

// Stores are the running dependencies.
type Stores struct {
	DatabaseURL string
	MongoURI    string
	AMQPURL     string
	Postgres    *stack.Postgres
	Rabbit      *stack.RabbitMQ
	Ferret      *stack.Ferret
}

// Stop stops whatever was started, in reverse order.
func (s *Stores) Stop() {
	s.Ferret.Stop()
	s.Rabbit.Stop()
	s.Postgres.Stop()
}

// TestEnv starts private PostgreSQL, RabbitMQ and FerretDB on free ports
// (unless URLs of existing servers are given), runs argv with
// STRATA_TEST_DATABASE_URL, STRATA_TEST_MONGODB_URI and STRATA_TEST_AMQP_URL
// set, stops everything and returns argv's exit code.
func TestEnv(ctx context.Context, cfg TestEnvConfig, argv []string, out io.Writer) (int, error) {
	if len(argv) == 0 {
		return 2, errors.New("test-env: no command given (usage: strata-local test-env -- go test ./...)")
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "strata-test-")
		if err != nil {
			return 1, err
		}
		cfg.Dir = d
	}
	// Others (postgres, rabbitmq) must be able to reach their subdirectories.
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		return 1, err
	}
	if !cfg.Keep {
		defer func() { _ = os.RemoveAll(cfg.Dir) }()
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	stores, err := startTestStores(ctx, cfg, out, logger)
	if stores != nil {
		defer stores.Stop()
	}
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(out, "strata-local: test stores ready (postgres, rabbitmq, ferretdb in %s)\n", cfg.Dir)

	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = os.Stdout, os.Stderr, os.Stdin
	cmd.Env = append(os.Environ(),
		"STRATA_TEST_DATABASE_URL="+stores.DatabaseURL,
		"STRATA_TEST_MONGODB_URI="+stores.MongoURI,
		"STRATA_TEST_AMQP_URL="+stores.AMQPURL,
		"STRATA_TEST_STORES_DIR="+cfg.Dir,
	)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

func startTestStores(ctx context.Context, cfg TestEnvConfig, out io.Writer, logger *slog.Logger) (*Stores, error) {
	s := &Stores{DatabaseURL: cfg.DatabaseURL, MongoURI: cfg.MongoURI, AMQPURL: cfg.AMQPURL}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 3)
	n := 0
	if s.DatabaseURL == "" {
		n++
		go func() {
			port, err := stack.FreePort()
			if err == nil {
				var pg *stack.Postgres
				pg, err = stack.StartPostgres(ctx, stack.PostgresOptions{Dir: filepath.Join(cfg.Dir, "postgres"), Port: port, Ephemeral: true, Out: out})
				if err == nil {
					s.Postgres, s.DatabaseURL = pg, pg.URL
				}
			}
			results <- result{"postgres", err}
		}()
	}
	if s.AMQPURL == "" {
		n++
		go func() {
			port, err := freePortRun(3)
			if err == nil {
				var r *stack.RabbitMQ
				r, err = stack.StartRabbitMQ(ctx, stack.RabbitOptions{Dir: filepath.Join(cfg.Dir, "rabbitmq"), Port: port, Out: out})
				if err == nil {
					s.Rabbit, s.AMQPURL = r, r.URL
				}
			}
			results <- result{"rabbitmq", err}
		}()
	}
	if s.MongoURI == "" {
		n++
		go func() {
			f, err := stack.StartFerret(ctx, filepath.Join(cfg.Dir, "ferretdb"), "127.0.0.1:0", logger)
			if err == nil {
				s.Ferret, s.MongoURI = f, f.URI
			}
			results <- result{"ferretdb", err}
		}()
	}
	var errs []error
	for range n {
		r := <-results
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
		}
	}
	return s, errors.Join(errs...)
}

// freePortRun finds a port p such that p..p+n-1 are all free.
func freePortRun(n int) (int, error) {
	for range 50 {
		p, err := stack.FreePort()
		if err != nil {
			return 0, err
		}
		if p+n >= 65535 {
			continue
		}
		ok := true
		for i := 1; i < n; i++ {
			if !stack.PortFree(fmt.Sprintf("127.0.0.1:%d", p+i)) {
				ok = false
				break
			}
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no run of free ports found")
}
