package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
)

// serviceSpec describes one service binary and how to configure each replica.
type serviceSpec struct {
	name     string // binary name and log prefix
	replicas int
	// env returns the replica's environment.
	env func(replica int) []string
	// grpcAddr is where the replica serves gRPC (waited on at start).
	grpcAddr func(replica int) string
}

// platform is the set of running services.
type platform struct {
	procs   []*stack.Proc
	exited  chan *stack.Proc
	demoEnv map[string]string
	lines   []string // where things listen
	tour    []string // ready-to-paste commands
}

// specs lists the services in start order. Each service issue adds its
// entry; a binary that is not built is reported and skipped.
func specs(cfg Config, stores *Stores) []serviceSpec {
	_ = cfg
	_ = stores
	return nil
}

func startServices(ctx context.Context, cfg Config, stores *Stores, out io.Writer) (*platform, error) {
	p := &platform{exited: make(chan *stack.Proc, 16), demoEnv: map[string]string{
		"STRATA_GATEWAY_URL": "http://" + cfg.GatewayAddr,
	}}
	for _, spec := range specs(cfg, stores) {
		bin := filepath.Join(cfg.BinDir, spec.name)
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(out, "strata-local: %s is not built (%s missing); skipping it\n", spec.name, bin)
			continue
		}
		for i := 1; i <= spec.replicas; i++ {
			name := spec.name
			if spec.replicas > 1 {
				name = fmt.Sprintf("%s-%d", spec.name, i)
			}
			proc, err := stack.StartProc(name, []string{bin}, spec.env(i), cfg.DataDir, filepath.Join(cfg.DataDir, "logs", name+".log"), "")
			if err != nil {
				return p, err
			}
			p.procs = append(p.procs, proc)
			go func() {
				<-proc.Done()
				if ctx.Err() == nil {
					p.exited <- proc
				}
			}()
			wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			err = stack.WaitTCP(wctx, spec.grpcAddr(i), proc)
			cancel()
			if err != nil {
				return p, fmt.Errorf("%s did not start: %w (see %s)", name, err, filepath.Join(cfg.DataDir, "logs", name+".log"))
			}
			p.lines = append(p.lines, fmt.Sprintf("  %-10s %s", name, spec.grpcAddr(i)))
		}
	}
	return p, nil
}

// stop stops services in reverse start order.
func (p *platform) stop(out io.Writer) {
	for i := len(p.procs) - 1; i >= 0; i-- {
		p.procs[i].Stop(15 * time.Second)
	}
	if len(p.procs) > 0 {
		fmt.Fprintf(out, "strata-local: stopped %d service process(es)\n", len(p.procs))
	}
}

func (p *platform) printTour(out io.Writer, demoEnvPath string) {
	if len(p.lines) > 0 {
		fmt.Fprintln(out, "strata-local: services")
		fmt.Fprintln(out, strings.Join(p.lines, "\n"))
	}
	fmt.Fprintf(out, "strata-local: demo credentials written to %s (load them with: . %s)\n", demoEnvPath, demoEnvPath)
	for k, v := range p.demoEnv {
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || strings.Contains(k, "KEY") {
			fmt.Fprintf(out, "  %s=%s\n", k, v)
		}
	}
	if len(p.tour) > 0 {
		fmt.Fprintln(out, "strata-local: try")
		fmt.Fprintln(out, strings.Join(p.tour, "\n"))
	}
}
