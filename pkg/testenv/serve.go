package testenv

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/grpcclient"
)

// Server is a service started by Serve: its gRPC address, and a stop
// that cancels it and waits for it to return (also run at test end).
type Server struct {
	Addr string
	// OpsAddr is the operator listener's address (/metrics, /readyz).
	OpsAddr string
	Stop    func()
	done    chan struct{}
	err     *error
}

// Serve runs serve on fresh loopback listeners (gRPC, health) until Stop
// is called or the test ends; a non-nil error from serve fails the test,
// named by name.
func Serve(t testing.TB, name string, serve func(ctx context.Context, grpcLis, healthLis net.Listener) error) Server {
	t.Helper()
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() { serveErr = serve(ctx, glis, hlis); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			if serveErr != nil {
				t.Errorf("%s: %v", name, serveErr)
			}
		})
	}
	t.Cleanup(stop)
	return Server{Addr: glis.Addr().String(), OpsAddr: hlis.Addr().String(), Stop: stop, done: done, err: &serveErr}
}

// WaitServing polls the gRPC health service over conn until it answers
// SERVING; the test fails if the server exits first or after 20 seconds.
func (s Server) WaitServing(t testing.TB, name string, conn grpc.ClientConnInterface) {
	t.Helper()
	ctx := Context(t)
	hc := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(20 * time.Second); ; {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("%s exited at start: %v", name, *s.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RequirePlaintextRefused fails the test unless a plaintext (no TLS)
// health check to addr is refused: a mutual-TLS server answers nothing
// without a certificate.
func RequirePlaintextRefused(t testing.TB, addr string) {
	t.Helper()
	plain, err := grpcclient.New(addr, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	short, cancel := context.WithTimeout(Context(t), 2*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(plain).Check(short, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call: %v (want refused)", err)
	}
}
