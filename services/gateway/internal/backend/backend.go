// Package backend calls one base over gRPC: one connection per replica,
// round robin over the replicas that are healthy (grpc.health.v1) and whose
// circuit breaker is closed, a bulkhead capping calls in flight so a slow
// base cannot take every gateway goroutine, and bounded retries on another
// replica for idempotent reads only. A target given as a DNS name (a
// Kubernetes headless Service) is resolved again every few seconds, so
// replicas that an autoscaler adds or removes join or leave the rotation.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
)

// ErrBusy means the bulkhead is full.
var ErrBusy = errors.New("backend busy")

// ErrPartnerBusy means the calling partner already has its share of the
// bulkhead in flight: the caller's limit, not the base's trouble.
var ErrPartnerBusy = errors.New("too many concurrent calls from this partner")

// ErrUnavailable means no replica could take the call (all breakers open
// or unhealthy).
var ErrUnavailable = errors.New("backend unavailable")

type replica struct {
	addr    string
	conn    *grpc.ClientConn
	breaker *breaker.Breaker
	healthy atomic.Bool
	// probing is set while a health probe is in flight; timeouts counts
	// consecutive probes that timed out; answered is when a call last got
	// an answer from the replica (unix ns): proof it is not hung.
	probing  atomic.Bool
	timeouts atomic.Int32
	answered atomic.Int64
	// left is cancelled when the replica leaves the rotation: attempts in
	// flight on it end at once instead of at their deadline.
	mu         sync.Mutex
	left       context.Context
	leftCancel context.CancelFunc
}

// errLeft ends an attempt in flight on a replica that left the rotation.
var errLeft = status.Error(codes.Unavailable, "the replica left the rotation (failed its health checks)")

// leaving returns the context cancelled when r next leaves the rotation.
func (r *replica) leaving() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left == nil || r.left.Err() != nil {
		r.left, r.leftCancel = context.WithCancel(context.Background())
	}
	return r.left
}

// leave cuts the attempts in flight on r.
func (r *replica) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leftCancel != nil {
		r.leftCancel()
	}
}

// Pool is one base's replicas.
type Pool struct {
	Name    string
	next    atomic.Uint64
	sem     *limits.Concurrency
	timeout time.Duration
	targets []string
	set     *breaker.Set
	opts    Options

	mu       sync.RWMutex
	replicas []*replica
}

// Options for New.
type Options struct {
	Client      grpcclient.Options
	MaxInFlight int // bulkhead size (default 256)
	// PerPartner caps one partner's calls in flight within the bulkhead
	// (default a quarter of it), so one partner's slow or expensive calls
	// leave room for the others. The partner is the call's x-partner-id
	// (pkg/origin); calls without one share the key "".
	PerPartner int
	Timeout    time.Duration // per attempt (default 2s)
	// Breaker settings per replica.
	Breaker breaker.Config
	// Lookup resolves a target's host name (default: the system resolver).
	Lookup func(ctx context.Context, host string) ([]string, error)
	// Dialer, when set, makes each replica's connection instead of the
	// network (tests: in-process servers over bufconn). Transport security
	// is still Client.TLS's; the gateway's configuration requires it.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// Logger records replicas leaving and rejoining the rotation (default:
	// discard).
	Logger *slog.Logger
}

// sentKey carries an attempt's sent flag to the stats handler.
type sentKey struct{}

// sentTracker is a gRPC stats handler that records, per attempt, whether
// the request message left this process (stats.OutPayload). An error
// raised before that — grpc-go refusing a header value with a control
// character, or a message it cannot marshal — is the caller's, never the
// replica's (see breaker.IsBackendFailure).
type sentTracker struct{}

func (sentTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (sentTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutPayload); ok {
		if f, ok := ctx.Value(sentKey{}).(*atomic.Bool); ok {
			f.Store(true)
		}
	}
}
func (sentTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (sentTracker) HandleConn(context.Context, stats.ConnStats)                       {}

// attempt runs fn once on r's connection under the per-attempt deadline and
// marks an error raised before the request left as the caller's fault.
// Connection failures (Unavailable) and a deadline passing while waiting
// for the replica stay the replica's.
func (p *Pool) attempt(ctx context.Context, r *replica, fn func(ctx context.Context, conn *grpc.ClientConn) error) error {
	sent := new(atomic.Bool)
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, sentKey{}, sent), p.timeout)
	defer cancel()
	left := r.leaving()
	stop := context.AfterFunc(left, cancel)
	defer stop()
	err := fn(cctx, r.conn)
	if err != nil && left.Err() != nil && ctx.Err() == nil {
		// Cut because the replica left the rotation (hung): another
		// replica may still take an idempotent call.
		return errLeft
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
	default:
		if err == nil || sent.Load() {
			r.answered.Store(time.Now().UnixNano()) // the replica answered
		}
	}
	if err == nil || sent.Load() {
		return err
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return err
	}
	return breaker.CallerFault(err)
}

// New builds a pool over targets (host:port each; a host name may resolve
// to several replicas). gRPC connects lazily, on first use.
func New(name string, targets []string, set *breaker.Set, o Options) (*Pool, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("backend %s: no addresses", name)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Lookup == nil {
		o.Lookup = net.DefaultResolver.LookupHost
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, t := range targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return nil, fmt.Errorf("backend %s: %q is not host:port", name, t)
		}
	}
	if o.PerPartner <= 0 {
		o.PerPartner = max(1, o.MaxInFlight/4)
	}
	p := &Pool{Name: name, sem: limits.NewConcurrency(o.MaxInFlight, o.PerPartner), timeout: o.Timeout, targets: targets, set: set, opts: o}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.Refresh(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// resolve lists the replica addresses the targets name now. A name that
// does not resolve keeps the replicas it had (DNS hiccups must not empty
// the rotation).
func (p *Pool) resolve(ctx context.Context, current map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, t := range p.targets {
		host, port, _ := net.SplitHostPort(t)
		if net.ParseIP(host) != nil {
			add(t)
			continue
		}
		ips, err := p.opts.Lookup(ctx, host)
		if err != nil || len(ips) == 0 {
			for a := range current {
				if h, pt, _ := net.SplitHostPort(a); pt == port && net.ParseIP(h) != nil {
					add(a)
				}
			}
			continue
		}
		sort.Strings(ips)
		for _, ip := range ips {
			add(net.JoinHostPort(ip, port))
		}
	}
	return out
}

// Refresh re-resolves the targets, dialing new replicas and closing those
// that are gone.
func (p *Pool) Refresh(ctx context.Context) error {
	p.mu.RLock()
	current := map[string]bool{}
	for _, r := range p.replicas {
		current[r.addr] = true
	}
	p.mu.RUnlock()
	want := p.resolve(ctx, current)
	wanted := map[string]bool{}
	for _, a := range want {
		wanted[a] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var keep []*replica
	for _, r := range p.replicas {
		if wanted[r.addr] {
			keep = append(keep, r)
			continue
		}
		_ = r.conn.Close()
		p.set.Remove(r.breaker.Name())
	}
	for _, a := range want {
		if current[a] {
			continue
		}
		dial := []grpc.DialOption{grpc.WithStatsHandler(sentTracker{})}
		if p.opts.Dialer != nil {
			dial = append(dial, grpc.WithContextDialer(p.opts.Dialer))
		}
		conn, err := grpcclient.New(a, p.opts.Client, dial...)
		if err != nil {
			return err
		}
		bc := p.opts.Breaker
		bc.Name = fmt.Sprintf("gateway->%s[%s]", p.Name, a)
		bc.IsFailure = nil // breaker.IsBackendFailure: only the replica's own failures count
		r := &replica{addr: a, conn: conn, breaker: p.set.New(bc)}
		r.healthy.Store(true)
		keep = append(keep, r)
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].addr < keep[j].addr })
	p.replicas = keep
	return nil
}

func (p *Pool) snapshot() []*replica {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.replicas
}

// Close closes the connections.
func (p *Pool) Close() {
	for _, r := range p.snapshot() {
		_ = r.conn.Close()
	}
}

// WatchHealth probes every replica's grpc.health.v1 status every interval
// until ctx ends, each replica on its own (a hung replica does not delay
// the others' probes), each probe given four fifths of the interval.
//
// A replica that answers NOT_SERVING, or cannot be connected to, leaves
// the rotation at once. A probe that only timed out is weaker evidence: on
// a saturated machine a probe can miss its deadline while the replica
// serves. So a replica leaves on the second consecutive timed-out probe,
// and a probe does not count while calls are getting answers from the
// replica. A hung replica still leaves within about three intervals (with
// the 250 ms interval, ~0.5–0.7 s), and the calls in flight on it are cut
// then (errLeft: an idempotent call moves on to another replica), so a
// hung base fails fast however long the per-attempt deadline; one slow
// probe on a busy machine no longer takes a healthy replica out (make
// abuse found every Base B replica skipped at once that way: 503 for
// everyone until the next probe passed).
func (p *Pool) WatchHealth(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	lastResolve := time.Now()
	for {
		if time.Since(lastResolve) >= 5*time.Second {
			lastResolve = time.Now()
			// On error the current replicas stay; the next refresh retries.
			_ = p.Refresh(ctx)
		}
		for _, r := range p.snapshot() {
			if r.probing.CompareAndSwap(false, true) {
				go func() {
					defer r.probing.Store(false)
					p.probe(ctx, r, every*4/5)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe checks r's health once and updates r.healthy.
func (p *Pool) probe(ctx context.Context, r *replica, timeout time.Duration) {
	start := time.Now().UnixNano()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	resp, err := healthpb.NewHealthClient(r.conn).Check(cctx, &healthpb.HealthCheckRequest{})
	cancel()
	if ctx.Err() != nil {
		return
	}
	ok := err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	if ok {
		r.timeouts.Store(0)
	} else if status.Code(err) == codes.DeadlineExceeded {
		if r.answered.Load() >= start {
			// Calls were answered meanwhile: a slow machine, not a
			// hung replica.
			r.timeouts.Store(0)
			return
		}
		if r.timeouts.Add(1) < 2 {
			return
		}
	}
	if was := r.healthy.Swap(ok); was != ok {
		if !ok {
			r.leave()
		}
		if ok {
			p.opts.Logger.Info("replica back in the rotation", "backend", p.Name, "replica", r.addr)
		} else {
			p.opts.Logger.Warn("replica failed its health check; skipped", "backend", p.Name, "replica", r.addr,
				"status", resp.GetStatus().String(), "err", err)
		}
	}
}

// States reports each replica's breaker and health.
func (p *Pool) States() map[string]string {
	out := map[string]string{}
	for _, r := range p.snapshot() {
		s := string(r.breaker.State())
		if !r.healthy.Load() {
			s += ",unhealthy"
		}
		out[r.addr] = s
	}
	return out
}

// Call runs fn on a replica. Idempotent calls that fail with Unavailable
// (or meet an open breaker) move on to the next replica, once per replica.
func (p *Pool) Call(ctx context.Context, idempotent bool, fn func(ctx context.Context, conn *grpc.ClientConn) error) error {
	release, partnerFull, ok := p.sem.Acquire(origin.PartnerOf(ctx))
	switch {
	case partnerFull:
		return ErrPartnerBusy
	case !ok:
		return ErrBusy
	}
	defer release()
	replicas := p.snapshot()
	if len(replicas) == 0 {
		return ErrUnavailable
	}
	attempts := 1
	if idempotent {
		attempts = len(replicas)
	}
	start := p.next.Add(1)
	var last error = ErrUnavailable
	tried := 0
	for i := 0; i < len(replicas) && tried < attempts; i++ {
		r := replicas[(start+uint64(i))%uint64(len(replicas))]
		// A replica that failed its last health check is skipped; when
		// every replica did, the call fails fast (503). That is what cuts a
		// hung base within one health interval (make chaos: breaker open
		// after ~0.75 s); the price is that a health check timing out on a
		// saturated machine answers 503 until the next check passes.
		// Trying unhealthy replicas as a last resort was measured to double
		// the time to fail fast, so it is not done.
		if !r.healthy.Load() && len(replicas) > 1 {
			continue
		}
		tried++
		err := r.breaker.Run(func() error { return p.attempt(ctx, r, fn) })
		if err == nil {
			return nil
		}
		last = err
		if errors.Is(err, breaker.ErrOpen) || status.Code(err) == codes.Unavailable {
			continue
		}
		return err
	}
	if errors.Is(last, breaker.ErrOpen) {
		return fmt.Errorf("%w: %w", ErrUnavailable, last)
	}
	return last
}
