package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/pki"
)

// Platform is the services of a running local stack, for end-to-end tests
// (make run uses the same code).
type Platform struct {
	p *platform
}

// StartPlatform starts every built service against existing stores.
// Processes that exit are not treated as failures (tests kill them).
func StartPlatform(ctx context.Context, cfg Config, stores *Stores, out io.Writer) (*Platform, error) {
	if cfg.GatewayAddr == "" {
		cfg.GatewayAddr = "127.0.0.1:8080"
	}
	var err error
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	p, err := startServices(ctx, cfg, stores, out)
	if err == nil {
		// After the services: their queues exist, so nothing is unroutable.
		err = seedEvents(ctx, p.broker.url["strata-ingest"], stores.AMQPCA)
	}
	if err != nil {
		if p != nil {
			p.stop(out)
		}
		return nil, err
	}
	return &Platform{p: p}, nil
}

// Env is the demo credentials (as in .data/demo.env).
func (pl *Platform) Env() map[string]string { return pl.p.demoEnv }

// BrokerURL is the AMQP URL of a service's own broker user ("gateway",
// "base-a", "base-b", "base-c", or "strata-ingest" for internal producers).
func (pl *Platform) BrokerURL(service string) string { return pl.p.broker.url[service] }

// Stop stops every service.
func (pl *Platform) Stop() { pl.p.stop(io.Discard) }

// Kill kills the named process (e.g. "base-b-1") with SIGKILL.
func (pl *Platform) Kill(name string) error {
	for _, proc := range pl.p.procs {
		if proc.Name == name {
			select {
			case <-proc.Done():
			default:
				proc.Kill()
			}
		}
	}
	return nil
}

// StopProc stops the named process gracefully.
func (pl *Platform) StopProc(name string) {
	for _, proc := range pl.p.procs {
		if proc.Name == name {
			proc.Stop(10 * time.Second)
		}
	}
}

// Restart starts the named process again.
func (pl *Platform) Restart(ctx context.Context, name string) error {
	if _, ok := pl.p.specOf[name]; !ok {
		return errors.New("unknown process " + name)
	}
	return pl.p.startOne(ctx, name, false)
}

// RSS returns each running service's resident memory in bytes (Linux).
func (pl *Platform) RSS() map[string]int64 {
	out := map[string]int64{}
	for _, proc := range pl.p.procs {
		select {
		case <-proc.Done():
			continue
		default:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", proc.Pid()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kb int64
				_, _ = fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
				out[proc.Name] = kb * 1024
			}
		}
	}
	return out
}

// DialAs connects to a base at addr over mTLS with the local CA's
// certificate for identity (e.g. "gateway"), verifying the server as
// serverName ("base-b"): for tests and benchmarks that call a base
// directly, as the caller they stand for.
func DialAs(dataDir, identity, serverName, addr string) (*grpc.ClientConn, error) {
	certs, err := localPKI(dataDir)
	if err != nil {
		return nil, err
	}
	f, ok := certs[identity]
	if !ok {
		return nil, errors.New("no local certificate for " + identity)
	}
	tlsCfg, err := pki.ClientConfig(f, serverName)
	if err != nil {
		return nil, err
	}
	return grpcclient.New(addr, grpcclient.Options{TLS: tlsCfg})
}

// CPU returns the CPU time (user + system) each running service process
// has used so far (Linux /proc; clock ticks of 10 ms).
func (pl *Platform) CPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, proc := range pl.p.procs {
		select {
		case <-proc.Done():
			continue
		default:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", proc.Pid()))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): state is
		// field 3, utime and stime are fields 14 and 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		var ut, st int64
		_, _ = fmt.Sscan(f[11], &ut)
		_, _ = fmt.Sscan(f[12], &st)
		out[proc.Name] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	return out
}
