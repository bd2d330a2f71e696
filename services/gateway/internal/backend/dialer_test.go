package backend_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/telemetry"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// A Dialer carries each replica's connection (tests: in-process servers
// over bufconn) but never its transport security: a pool configured for
// TLS still insists on it.
func TestDialerCarriesConnectionsButNotSecurity(t *testing.T) {
	t.Parallel()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	dialed := map[string]int{}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		dialed[addr]++
		return lis.DialContext(ctx)
	}
	check := func(p *backend.Pool) error {
		return p.Call(context.Background(), false, func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		})
	}
	set, _ := breaker.NewSet(telemetry.Noop().Meter("t"), logging.Discard())
	plain, err := backend.New("base-a", []string{"10.0.0.1:7101"}, set, backend.Options{Dialer: dialer, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := check(plain); err != nil || dialed["10.0.0.1:7101"] == 0 {
		t.Fatalf("call over the dialer: %v (dialed %v)", err, dialed)
	}
	secure, err := backend.New("base-b", []string{"10.0.0.2:7201"}, set, backend.Options{Dialer: dialer, Timeout: time.Second,
		Client: grpcclient.Options{TLS: &tls.Config{ServerName: "base-b", MinVersion: tls.VersionTLS13}}})
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Close()
	if err := check(secure); err == nil {
		t.Fatal("a TLS pool talked to a plaintext server through the dialer")
	}
}
