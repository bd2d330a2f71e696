// Package platformtest starts a whole local platform (every service its own
// process, from the built binaries) for the deploy/local test suites: the
// end-to-end and trace tests, the benchmarks and soak, and the chaos and
// abuse suites. It holds what each of them did alike: the shared test
// stores, a port offset whose service ports are free, and the start that
// retries on other ports.
package platformtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/stack"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// servicePorts are the platform's ports before app.Config.PortOffset shifts
// them: Base A, B and C gRPC and operator ports, the gateway's operator
// port and its partners' port.
var servicePorts = []int{7101, 9101, 9080, 7201, 7202, 9201, 9202, 7301, 7302, 9301, 9302, 8080}

// attempts is how many port offsets Start tries.
const attempts = 3

// SharedStores are the stores of the project's test environment
// (strata-local test-env), with rabbitmqctl so each service gets its own
// broker user.
func SharedStores(t testing.TB) *app.Stores {
	t.Helper()
	return &app.Stores{DatabaseURL: testenv.PostgresAdminURL(t), MongoURI: testenv.MongoURI(t), AMQPURL: testenv.AMQPURL(t),
		RabbitCtl: strings.Fields(os.Getenv(testenv.EnvRabbitmqctl))}
}

// FreeOffset is a port offset whose shifted service ports are all free now.
func FreeOffset(t testing.TB) int {
	t.Helper()
	for range 50 {
		if off := 10000 + rand.IntN(40000); offsetFree(off) {
			return off
		}
	}
	t.Fatal("no free port range")
	return 0
}

func offsetFree(off int) bool {
	for _, p := range servicePorts {
		if !stack.PortFree(fmt.Sprintf("127.0.0.1:%d", p+off)) {
			return false
		}
	}
	return true
}

// Options say how to start a platform.
type Options struct {
	// Config is the platform's configuration; Start sets its PortOffset
	// and GatewayAddr for each attempt. Keep DataDir the same across
	// attempts (the same secrets and certificates on a retry).
	Config app.Config
	// Stores are the stores the services use (nil: SharedStores).
	Stores *app.Stores
	// Prepare, when set, runs before each attempt with that attempt's
	// configuration (its PortOffset already set): for example to put
	// proxies in front of the shifted ports and point the services at them.
	Prepare func(cfg *app.Config)
}

// Start starts a platform on free ports and stops it when the test ends. A
// port checked free can be taken before a service binds it, so a failed
// start is retried on other ports (three attempts in all), logging the
// tail of what each service logged. It returns the platform and the
// configuration it runs with.
func Start(t testing.TB, ctx context.Context, o Options) (*app.Platform, app.Config) {
	t.Helper()
	stores := o.Stores
	if stores == nil {
		stores = SharedStores(t)
	}
	for attempt := 1; ; attempt++ {
		cfg := o.Config
		cfg.PortOffset = FreeOffset(t)
		cfg.GatewayAddr = fmt.Sprintf("127.0.0.1:%d", 8080+cfg.PortOffset)
		if o.Prepare != nil {
			o.Prepare(&cfg)
		}
		pl, err := app.StartPlatform(ctx, cfg, stores, io.Discard)
		if err == nil {
			t.Cleanup(pl.Stop)
			return pl, cfg
		}
		logTails(t, cfg.DataDir)
		if attempt == attempts {
			t.Fatal(err)
		}
		t.Logf("platform start %d failed (%v); retrying on other ports", attempt, err)
	}
}

// logTails logs the end of every service's log under dataDir.
func logTails(t testing.TB, dataDir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dataDir, "logs", "*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil && len(b) > 0 {
			t.Logf("%s: %s", filepath.Base(l), Tail(string(b), 600))
		}
	}
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
