package backend_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/pkg/telemetry"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// replica starts a gRPC health server on ip:port.
func replica(t *testing.T, ip string, port string) string {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// A DNS target follows the names' answers: replicas join and leave.
func TestDNSTargetsFollowScaling(t *testing.T) {
	t.Parallel()
	first := replica(t, "127.0.0.1", "0")
	_, port, _ := net.SplitHostPort(first)
	second := replica(t, "127.0.0.2", port)
	var mu sync.Mutex
	answer := []string{"127.0.0.1"}
	lookup := func(_ context.Context, host string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if host != "base-c.strata.svc" {
			t.Errorf("resolved %q", host)
		}
		return append([]string(nil), answer...), nil
	}
	p, set := newPool(t, "base-c", []string{"base-c.strata.svc:" + port}, backend.Options{Lookup: lookup, Timeout: time.Second})
	served := func() map[string]bool {
		seen := map[string]bool{}
		for range 6 {
			var pr peer.Peer
			err := p.Call(context.Background(), true, func(ctx context.Context, conn *grpc.ClientConn) error {
				_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&pr))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			seen[pr.Addr.String()] = true
		}
		return seen
	}
	if s := served(); len(s) != 1 || !s[first] {
		t.Fatalf("one replica: served by %v", s)
	}
	mu.Lock()
	answer = []string{"127.0.0.1", "127.0.0.2"}
	mu.Unlock()
	if err := p.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := served(); len(s) != 2 || !s[second] {
		t.Fatalf("scaled to two: served by %v", s)
	}
	mu.Lock()
	answer = []string{"127.0.0.2"}
	mu.Unlock()
	_ = p.Refresh(context.Background())
	if s := served(); len(s) != 1 || !s[second] {
		t.Fatalf("scaled down: served by %v", s)
	}
	if len(p.States()) != 1 || len(set.States()) != 1 {
		t.Fatalf("a removed replica lingers: %v / %v", p.States(), set.States())
	}
	// A failed lookup keeps the replicas rather than emptying the rotation.
	p2, err := backend.New("base-b", []string{"base-c.strata.svc:" + port}, set, backend.Options{Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	mu.Lock()
	answer = nil
	mu.Unlock()
	_ = p2.Refresh(context.Background())
	if len(p2.States()) != 1 {
		t.Fatalf("an empty DNS answer emptied the pool: %v", p2.States())
	}
}

// The attack: a partner's Authorization header holding a control
// character makes grpc-go refuse the call locally (codes.Internal), and a
// message that cannot be marshalled (invalid UTF-8 in a string field) is
// refused the same way. Neither left the gateway: no breaker may move, and
// the error must still reach the caller.
func TestLocalRefusalsNeverOpenABreaker(t *testing.T) {
	t.Parallel()
	addr := replica(t, "127.0.0.1", "0")
	p, set := newPool(t, "base-b", []string{addr}, backend.Options{Timeout: time.Second,
		Breaker: breaker.Config{ConsecutiveFailures: 3, OpenFor: time.Minute}})
	attacks := map[string]func(ctx context.Context, conn *grpc.ClientConn) error{
		"control character in a header": func(ctx context.Context, conn *grpc.ClientConn) error {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer a\x01b")
			_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		},
		"invalid UTF-8 in a string field": func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "\xff\xfe"})
			return err
		},
	}
	for name, attack := range attacks {
		for range 10 {
			if err := p.Call(context.Background(), true, attack); err == nil {
				t.Fatalf("%s: the call succeeded", name)
			}
		}
		for b, s := range set.States() {
			if s != breaker.Closed {
				t.Fatalf("%s: breaker %s is %s", name, b, s)
			}
		}
	}
	// The replica itself still serves.
	if err := p.Call(context.Background(), true, healthCheck); err != nil {
		t.Fatal(err)
	}
}

// A replica that cannot be reached is still the replica's failure.
func TestUnreachableReplicaStillOpensItsBreaker(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	p, set := newPool(t, "base-c", []string{addr}, backend.Options{Timeout: time.Second,
		Breaker: breaker.Config{ConsecutiveFailures: 3, OpenFor: time.Minute}})
	for range 4 {
		_ = p.Call(context.Background(), true, healthCheck)
	}
	for b, s := range set.States() {
		if s != breaker.Open {
			t.Fatalf("breaker %s of an unreachable replica is %s", b, s)
		}
	}
}

// A partner cannot take more than its share of a base: with its calls in
// flight at the cap, its next call is refused at once (the caller's limit:
// ErrPartnerBusy, no breaker involved) while another partner is served.
func TestPerPartnerShareOfTheBulkhead(t *testing.T) {
	t.Parallel()
	addr := replica(t, "127.0.0.1", "0")
	p, set := newPool(t, "base-c", []string{addr}, backend.Options{Timeout: 5 * time.Second, MaxInFlight: 8, PerPartner: 2})
	as := func(partner string) context.Context {
		return origin.Outgoing(context.Background(), origin.Origin{PartnerID: partner, ClientIP: "127.0.0.1"})
	}
	check := healthCheck
	release := make(chan struct{})
	var started, done sync.WaitGroup
	for range 2 {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			_ = p.Call(as("hostile"), true, func(ctx context.Context, conn *grpc.ClientConn) error {
				started.Done()
				<-release
				return check(ctx, conn)
			})
		}()
	}
	started.Wait()
	if err := p.Call(as("hostile"), true, check); !errors.Is(err, backend.ErrPartnerBusy) {
		t.Fatalf("a partner over its share: %v", err)
	}
	if err := p.Call(as("good"), true, check); err != nil {
		t.Fatalf("another partner was not served: %v", err)
	}
	close(release)
	done.Wait()
	for b, s := range set.States() {
		if s != breaker.Closed {
			t.Fatalf("breaker %s is %s", b, s)
		}
	}
}

// newPool is a pool named name over targets with a breaker set of its own,
// closed when the test ends.
func newPool(t *testing.T, name string, targets []string, o backend.Options) (*backend.Pool, *breaker.Set) {
	t.Helper()
	set, _ := breaker.NewSet(telemetry.Noop().Meter("t"), logging.Discard())
	p, err := backend.New(name, targets, set, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, set
}

// healthCheck is a call every live replica answers.
func healthCheck(ctx context.Context, conn *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}
