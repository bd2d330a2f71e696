// Package grpcclient builds gRPC client connections the way Strata's
// services call each other: OpenTelemetry stats handler, a default deadline
// on every call, optional client-side round robin with grpc.health.v1
// checking over several replicas, and TLS/mTLS when configured.
package grpcclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers client-side health checking
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/strata-bureau/strata/pkg/telemetry"
)

// Options configure a connection.
type Options struct {
	Telemetry *telemetry.Telemetry
	// TLS, when set, dials with TLS (mTLS when it carries a certificate).
	TLS *tls.Config
	// DefaultTimeout bounds calls made without a deadline (default 5s).
	DefaultTimeout time.Duration
	// HealthCheck enables grpc.health.v1 watching: replicas that report
	// NOT_SERVING leave the round robin until they recover.
	HealthCheck bool
	// UnaryInterceptors run after the deadline interceptor, in order.
	UnaryInterceptors []grpc.UnaryClientInterceptor
}

// New dials one address.
func New(addr string, opts Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	return NewBalanced([]string{addr}, opts, extra...)
}

// NewBalanced returns one connection that balances calls round robin over
// addrs (host:port each); each address is one replica.
func NewBalanced(addrs []string, opts Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("grpcclient: no addresses")
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 5 * time.Second
	}
	res := manual.NewBuilderWithScheme("strata")
	state := resolver.State{}
	for _, a := range addrs {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: strings.TrimSpace(a)})
	}
	res.InitialState(state)

	sc := `{"loadBalancingConfig":[{"round_robin":{}}]`
	if opts.HealthCheck {
		sc += `,"healthCheckConfig":{"serviceName":""}`
	}
	sc += `}`

	do := []grpc.DialOption{
		grpc.WithResolvers(res),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithChainUnaryInterceptor(append([]grpc.UnaryClientInterceptor{deadline(opts.DefaultTimeout)}, opts.UnaryInterceptors...)...),
	}
	if opts.Telemetry != nil {
		do = append(do, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(opts.Telemetry.TracerProvider),
			otelgrpc.WithMeterProvider(opts.Telemetry.MeterProvider),
			otelgrpc.WithPropagators(opts.Telemetry.Propagator),
		)))
	}
	if opts.TLS != nil {
		do = append(do, grpc.WithTransportCredentials(credentials.NewTLS(opts.TLS)))
	} else {
		do = append(do, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	do = append(do, extra...)
	conn, err := grpc.NewClient(res.Scheme()+":///replicas", do...)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: %w", err)
	}
	return conn, nil
}

func deadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
