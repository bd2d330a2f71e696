package backend_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// probeServer is a replica whose health probes (calls without the
// "x-call" metadata) can hang or report NOT_SERVING, while calls (with it)
// are answered at once: a replica on a saturated machine, or a hung one.
type probeServer struct {
	healthpb.UnimplementedHealthServer
	hangProbes  atomic.Int32 // the next n probes hang until their deadline
	hangAlways  atomic.Bool
	hangCalls   atomic.Bool
	notServing  atomic.Bool
	probesTaken atomic.Int32
}

func (s *probeServer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("x-call")) > 0 {
		if s.hangCalls.Load() {
			<-ctx.Done()
			return nil, status.Error(codes.DeadlineExceeded, "hung")
		}
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	s.probesTaken.Add(1)
	if s.hangAlways.Load() || s.hangProbes.Add(-1) >= 0 {
		<-ctx.Done()
		return nil, status.Error(codes.DeadlineExceeded, "hung")
	}
	if s.notServing.Load() {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func probeReplicas(t *testing.T, n int) ([]*probeServer, *backend.Pool, []string) {
	return probeReplicasWith(t, n, time.Second)
}

func probeReplicasWith(t *testing.T, n int, timeout time.Duration) ([]*probeServer, *backend.Pool, []string) {
	t.Helper()
	var servers []*probeServer
	var addrs []string
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ps := &probeServer{}
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, ps)
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		servers = append(servers, ps)
		addrs = append(addrs, lis.Addr().String())
	}
	p, _ := newPool(t, "base-b", addrs, backend.Options{Timeout: timeout,
		Breaker: breaker.Config{ConsecutiveFailures: 3, OpenFor: time.Minute}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// 150 ms: a probe gets 120 ms, far above a loaded machine's loopback
	// round trip under -race (at 50 ms two slow probes in a row happened).
	go p.WatchHealth(ctx, 150*time.Millisecond)
	return servers, p, addrs
}

func unhealthy(p *backend.Pool) int {
	n := 0
	for _, s := range p.States() {
		if strings.Contains(s, "unhealthy") {
			n++
		}
	}
	return n
}

func call(p *backend.Pool) error {
	return p.Call(context.Background(), true, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := healthpb.NewHealthClient(conn).Check(metadata.AppendToOutgoingContext(ctx, "x-call", "1"), &healthpb.HealthCheckRequest{})
		return err
	})
}

// make abuse saw bursts of 503 for the well-behaved partner: on a
// saturated machine every Base B replica's health probe timed out at once,
// each replica was skipped, and every call failed fast until the next
// probe passed. One timed-out probe no longer takes a replica out.
func TestOneSlowProbeKeepsTheReplicas(t *testing.T) {
	t.Parallel()
	servers, p, _ := probeReplicas(t, 2)
	for _, s := range servers {
		s.hangProbes.Store(1)
	}
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if n := unhealthy(p); n > 0 {
			t.Fatalf("one slow probe took %d replicas out: %v", n, p.States())
		}
	}
	for _, s := range servers {
		if s.probesTaken.Load() < 3 {
			t.Fatalf("the replicas were not probed: %d probes", s.probesTaken.Load())
		}
	}
}

// While calls are answered, probes that time out are a slow machine's,
// not a hung replica's: the replicas stay and every call is served.
func TestProbeTimeoutsWhileCallsAreAnswered(t *testing.T) {
	t.Parallel()
	servers, p, _ := probeReplicas(t, 2)
	for _, s := range servers {
		s.hangAlways.Store(true)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err := call(p); err != nil {
			t.Fatalf("a call failed while the replicas answered calls: %v (%v)", err, p.States())
		}
	}
}

// A hung replica (probes time out, no call answered) still leaves within
// a few intervals, and one reporting NOT_SERVING leaves at once; both come
// back when their probes pass again.
func TestHungOrNotServingReplicaLeaves(t *testing.T) {
	t.Parallel()
	servers, p, addrs := probeReplicas(t, 2)
	servers[0].hangAlways.Store(true)
	for deadline := time.Now().Add(5 * time.Second); unhealthy(p) != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a hung replica stayed in the rotation: %v", p.States())
		}
	}
	servers[0].hangAlways.Store(false)
	servers[1].notServing.Store(true)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st := p.States()
		if strings.Contains(st[addrs[1]], "unhealthy") && !strings.Contains(st[addrs[0]], "unhealthy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the NOT_SERVING replica out and the other back: %v", st)
		}
	}
}

// A hung base is cut by the health probes, not by the per-attempt
// deadline: the calls in flight on a replica that leaves the rotation end
// then (Unavailable), so the deadline can be long enough to ride out a
// shared store's stall without a hung base holding callers for it.
func TestCallsInFlightOnAHungReplicaEndWhenItLeaves(t *testing.T) {
	t.Parallel()
	servers, p, _ := probeReplicasWith(t, 2, 10*time.Second)
	for _, s := range servers {
		s.hangAlways.Store(true)
		s.hangCalls.Store(true)
	}
	start := time.Now()
	err := call(p)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a call on hung replicas was held %s (its deadline, not their leaving)", took)
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("want Unavailable, got %v", err)
	}
	// Both have left: the next call fails at once.
	start = time.Now()
	if err := call(p); err == nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a call with every replica out: %v after %s", err, time.Since(start))
	}
}
