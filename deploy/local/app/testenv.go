package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
)

// TestEnvConfig configures the test environment.
type TestEnvConfig struct {
	// Existing servers to use instead of private ones (may be empty).
	DatabaseURL string
	MongoURI    string
	AMQPURL     string
	// AMQPCA is the CA bundle for an amqps:// AMQPURL.
	AMQPCA string
	// Dir holds the private instances; removed afterwards unless Keep.
	Dir  string
	Keep bool
	// PprofAddr, when set, serves a CPU profile of this process (where
	// FerretDB runs) at /debug/pprof/profile on that address; the command
	// gets its URL in STRATA_TEST_PPROF_URL (for make bench's profiles).
	PprofAddr string
}

// Stores are the running dependencies.
type Stores struct {
	DatabaseURL string
	MongoURI    string
	AMQPURL     string
	// AMQPCA is the CA bundle for an amqps:// AMQPURL.
	AMQPCA string
	// RabbitCtl runs rabbitmqctl against the broker at AMQPURL (when the
	// launcher did not start it itself), so services get their own users.
	RabbitCtl []string
	Postgres  *stack.Postgres
	Rabbit    *stack.RabbitMQ
	Ferret    *stack.Ferret
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
	if cfg.PprofAddr != "" {
		url, stop, err := servePprof(cfg.PprofAddr)
		if err != nil {
			return 1, err
		}
		defer stop()
		cmd.Env = append(cmd.Env, "STRATA_TEST_PPROF_URL="+url)
	}
	if stores.Rabbit != nil {
		// Tests create broker users of their own (least-privilege tests).
		cmd.Env = append(cmd.Env, "STRATA_TEST_RABBITMQCTL="+strings.Join(stores.Rabbit.CtlCommand(), " "))
	}
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

// servePprof serves this process's CPU profile on addr.
func servePprof(addr string) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("test-env pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func startTestStores(ctx context.Context, cfg TestEnvConfig, out io.Writer, logger *slog.Logger) (*Stores, error) {
	s := &Stores{DatabaseURL: cfg.DatabaseURL, MongoURI: cfg.MongoURI, AMQPURL: cfg.AMQPURL}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 3)
	n := 0
	// Reserve every port up front, holding them until all are chosen, so the
	// stores started in parallel never pick the same one.
	pgPort, rabbitPort, err := reservePorts()
	if err != nil {
		return s, err
	}
	if s.DatabaseURL == "" {
		n++
		go func() {
			port, err := pgPort, error(nil)
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
			port, err := rabbitPort, error(nil)
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

// reservePorts returns a free port for PostgreSQL and a free run of three
// (AMQP, distribution, epmd) for RabbitMQ, all distinct.
func reservePorts() (pg, rabbit int, err error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	listen := func(port int) (int, bool) {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return 0, false
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, true
	}
	pg, ok := listen(0)
	if !ok {
		return 0, 0, errors.New("no free port")
	}
	for range 100 {
		p, ok := listen(0)
		if !ok || p+2 >= 65535 {
			continue
		}
		if _, ok := listen(p + 1); !ok {
			continue
		}
		if _, ok := listen(p + 2); !ok {
			continue
		}
		return pg, p, nil
	}
	return 0, 0, errors.New("no run of three free ports found")
}
