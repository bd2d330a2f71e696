// Package backend calls one base over gRPC: one connection per replica,
// round robin over the replicas that are healthy (grpc.health.v1) and whose
// circuit breaker is closed, a bulkhead capping calls in flight so a slow
// base cannot take every gateway goroutine, and bounded retries on another
// replica for idempotent reads only.
package backend

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/grpcclient"
)

// ErrBusy means the bulkhead is full.
var ErrBusy = errors.New("backend busy")

// ErrUnavailable means no replica could take the call (all breakers open
// or unhealthy).
var ErrUnavailable = errors.New("backend unavailable")

type replica struct {
	addr    string
	conn    *grpc.ClientConn
	breaker *breaker.Breaker
	healthy atomic.Bool
}

// Pool is one base's replicas.
type Pool struct {
	Name     string
	replicas []*replica
	next     atomic.Uint64
	sem      chan struct{}
	timeout  time.Duration
}

// Options for New.
type Options struct {
	Client      grpcclient.Options
	MaxInFlight int           // bulkhead size (default 256)
	Timeout     time.Duration // per attempt (default 2s)
	// Breaker settings per replica.
	Breaker breaker.Config
}

// isFailure counts only errors that say the replica is in trouble.
func isFailure(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

// New dials every replica (lazily: gRPC connects on first use).
func New(name string, addrs []string, set *breaker.Set, o Options) (*Pool, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("backend %s: no addresses", name)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	p := &Pool{Name: name, sem: make(chan struct{}, o.MaxInFlight), timeout: o.Timeout}
	for _, a := range addrs {
		conn, err := grpcclient.New(a, o.Client)
		if err != nil {
			p.Close()
			return nil, err
		}
		bc := o.Breaker
		bc.Name = fmt.Sprintf("gateway->%s[%s]", name, a)
		bc.IsFailure = isFailure
		r := &replica{addr: a, conn: conn, breaker: set.New(bc)}
		r.healthy.Store(true)
		p.replicas = append(p.replicas, r)
	}
	return p, nil
}

// Close closes the connections.
func (p *Pool) Close() {
	for _, r := range p.replicas {
		_ = r.conn.Close()
	}
}

// WatchHealth polls every replica's grpc.health.v1 status until ctx ends;
// a replica that is not SERVING, or does not answer within the interval,
// is skipped (its breaker decides the rest). With a 250 ms interval a hung
// replica leaves the rotation within about half a second, before its
// breaker has seen three failed calls.
func (p *Pool) WatchHealth(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, r := range p.replicas {
			cctx, cancel := context.WithTimeout(ctx, every)
			resp, err := healthpb.NewHealthClient(r.conn).Check(cctx, &healthpb.HealthCheckRequest{})
			cancel()
			r.healthy.Store(err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// States reports each replica's breaker and health.
func (p *Pool) States() map[string]string {
	out := map[string]string{}
	for _, r := range p.replicas {
		s := string(r.breaker.State())
		if !r.healthy.Load() {
			s += ",unhealthy"
		}
		out[r.addr] = s
	}
	return out
}

// Available reports whether some replica may take calls.
func (p *Pool) Available() bool {
	for _, r := range p.replicas {
		if r.breaker.State() != breaker.Open && r.healthy.Load() {
			return true
		}
	}
	return false
}

// Call runs fn on a replica. Idempotent calls that fail with Unavailable
// (or meet an open breaker) move on to the next replica, once per replica.
func (p *Pool) Call(ctx context.Context, idempotent bool, fn func(ctx context.Context, conn *grpc.ClientConn) error) error {
	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
	default:
		return ErrBusy
	}
	attempts := 1
	if idempotent {
		attempts = len(p.replicas)
	}
	start := p.next.Add(1)
	var last error = ErrUnavailable
	tried := 0
	for i := 0; i < len(p.replicas) && tried < attempts; i++ {
		r := p.replicas[(start+uint64(i))%uint64(len(p.replicas))]
		if !r.healthy.Load() && len(p.replicas) > 1 {
			continue
		}
		tried++
		err := r.breaker.Run(func() error {
			cctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			return fn(cctx, r.conn)
		})
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
