// Package grpcclient builds gRPC client connections the way Strata's
// services call each other: OpenTelemetry stats handler, a default deadline
// on every call, and TLS/mTLS when configured.
package grpcclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-bureau/strata/pkg/telemetry"
)

// Options configure a connection.
type Options struct {
	Telemetry *telemetry.Telemetry
	// TLS, when set, dials with TLS (mTLS when it carries a certificate).
	TLS *tls.Config
	// DefaultTimeout bounds calls made without a deadline (default 5s).
	DefaultTimeout time.Duration
}

// New dials one replica at addr (host:port), lazily. Balancing over
// replicas, with a breaker and health state per replica, is the caller's
// (see the gateway's backend pools), so the address is used as given.
func New(addr string, opts Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 5 * time.Second
	}
	do := []grpc.DialOption{
		grpc.WithUnaryInterceptor(deadline(opts.DefaultTimeout)),
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
	conn, err := grpc.NewClient("passthrough:///"+addr, append(do, extra...)...)
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
