// Package health answers liveness and readiness. Liveness says the process
// runs; readiness runs the registered checks (database ping, broker
// connection, ...) and reports every circuit breaker's state. The same
// result drives the grpc.health.v1 status, so load balancers and the
// gateway's client-side health checking agree with /readyz.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/pkg/breaker"
)

// CheckFunc returns nil when the dependency is usable.
type CheckFunc func(ctx context.Context) error

// Checker holds named checks.
type Checker struct {
	breakers *breaker.Set

	mu     sync.Mutex
	checks map[string]CheckFunc
}

// New returns a checker reporting the breakers of set (which may be nil).
func New(set *breaker.Set) *Checker {
	return &Checker{breakers: set, checks: map[string]CheckFunc{}}
}

// Add registers a check.
func (c *Checker) Add(name string, f CheckFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = f
}

// Report is the readiness answer.
type Report struct {
	Ready    bool                     `json:"ready"`
	Checks   map[string]string        `json:"checks"`
	Breakers map[string]breaker.State `json:"breakers,omitempty"`
}

// Check runs every check with a short timeout. Errors are reported as
// "unavailable" without their text, which may hold internal detail.
func (c *Checker) Check(ctx context.Context) Report {
	c.mu.Lock()
	checks := make(map[string]CheckFunc, len(c.checks))
	for k, v := range c.checks {
		checks[k] = v
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r := Report{Ready: true, Checks: map[string]string{}}
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			r.Ready = false
			r.Checks[n] = "unavailable"
		} else {
			r.Checks[n] = "ok"
		}
	}
	if c.breakers != nil {
		r.Breakers = c.breakers.States()
	}
	return r
}

// Livez always answers 200 while the process serves HTTP.
func Livez(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"live":true}` + "\n"))
}

// Readyz answers 200 when every check passes, 503 otherwise.
func (c *Checker) Readyz(w http.ResponseWriter, r *http.Request) {
	rep := c.Check(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}

// Mux returns a service's operator mux: /livez, the detailed /readyz
// (checks and breakers), /metrics when given, and pprof. It is served on
// the operator address only (*_OPS_ADDR), never on a partners' port.
func (c *Checker) Mux(metrics http.Handler) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /livez", Livez)
	m.HandleFunc("GET /readyz", c.Readyz)
	Operator(m, metrics)
	return m
}

// Operator registers the operator-only endpoints on m: /metrics (when
// metrics is not nil) and the pprof handlers under /debug/pprof/.
func Operator(m *http.ServeMux, metrics http.Handler) {
	if metrics != nil {
		m.Handle("GET /metrics", metrics)
	}
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// Drive sets the overall grpc.health.v1 status ("") from the checks every
// interval until ctx ends.
func (c *Checker) Drive(ctx context.Context, hs *health.Server, interval time.Duration) {
	set := func() {
		st := healthpb.HealthCheckResponse_SERVING
		if !c.Check(ctx).Ready {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if ctx.Err() == nil && hs != nil {
			hs.SetServingStatus("", st)
		}
	}
	set()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			set()
		}
	}
}
