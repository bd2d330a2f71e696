// Package platform starts what every Strata service runs on, in the order
// each Serve needs it: telemetry, the breaker set, the broker connection
// and the health checker behind the operator address. Each Serve then
// reads top to bottom: platform, store, server, and one errgroup of Run
// methods.
package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/health"
	"github.com/strata-bureau/strata/pkg/httpserver"
	"github.com/strata-bureau/strata/pkg/pki"
	"github.com/strata-bureau/strata/pkg/retry"
	"github.com/strata-bureau/strata/pkg/telemetry"
)

// Platform is a running service's shared machinery.
type Platform struct {
	Name     string
	Logger   *slog.Logger
	Tel      *telemetry.Telemetry
	Breakers *breaker.Set
	// MQ is the broker connection (its check is in Health as "amqp").
	MQ     *amqp.Client
	Health *health.Checker
	svc    *config.Service
}

// Start sets up telemetry, breakers and the broker for the service name
// (also its broker connection's name, with suffix when not empty). Close
// releases them.
func Start(ctx context.Context, name, suffix string, cfg *config.Service, logger *slog.Logger) (*Platform, error) {
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: name, Env: cfg.OTel, OTLPEndpoint: cfg.OTLPEndpoint, OTLPInsecure: true})
	if err != nil {
		return nil, err
	}
	p := &Platform{Name: name, Logger: logger, Tel: tel, svc: cfg}
	if p.Breakers, err = breaker.NewSet(tel.Meter(name), logger); err != nil {
		p.Close(ctx)
		return nil, err
	}
	conn := name
	if suffix != "" {
		conn += " " + suffix
	}
	p.MQ, err = amqp.Dial(ctx, amqp.Config{URL: cfg.AMQPURL.Reveal(), CAFile: cfg.AMQPCA, Name: conn, Logger: logger, Exchange: cfg.Exchange,
		TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider, Propagator: tel.Propagator})
	if err != nil {
		p.Close(ctx)
		return nil, err
	}
	p.Health = health.New(p.Breakers)
	p.Health.Add("amqp", p.MQ.Check)
	return p, nil
}

// Close closes the broker connection and flushes telemetry.
func (p *Platform) Close(ctx context.Context) {
	if p.MQ != nil {
		_ = p.MQ.Close()
	}
	_ = p.Tel.Shutdown(context.WithoutCancel(ctx))
}

// GRPCServer is a base's gRPC server on the platform's logger and
// telemetry: mutual TLS with the service's certificate, admitting only
// callers whose certificates chain to its CA, and reflection as g says.
// opts adds the base's interceptors.
func (p *Platform) GRPCServer(g config.GRPC, opts grpcserver.Options) (*grpcserver.Server, error) {
	tlsCfg, err := pki.ServerConfig(pki.Files{Cert: p.svc.TLSCert, Key: p.svc.TLSKey, CA: p.svc.TLSCA})
	if err != nil {
		return nil, err
	}
	opts.Logger, opts.Telemetry, opts.TLS, opts.Reflection = p.Logger, p.Tel, tlsCfg, g.GRPCReflection
	return grpcserver.New(opts), nil
}

// Publisher returns a publisher guarded by a breaker named name->amqp.
func (p *Platform) Publisher(openFor time.Duration) *amqp.Publisher {
	return amqp.NewPublisher(p.MQ, amqp.PublisherOptions{
		Breaker:    p.Breakers.New(breaker.Config{Name: p.Name + "->amqp", OpenFor: openFor}),
		Propagator: p.Tel.Propagator,
	})
}

// Declare declares q before the service reports ready, so nothing published
// once it is up is unroutable; retried, because replicas start together
// (a failed declaration closes its channel).
func (p *Platform) Declare(ctx context.Context, q amqp.Queue) error {
	return retry.Do(ctx, 5, func(ctx context.Context) error {
		ch, err := p.MQ.Channel(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = ch.Close() }()
		return q.Declare(ch)
	})
}

// ServeOps serves the operator surface (/livez, /readyz with checks and
// breakers, /metrics, pprof) on lis until ctx ends.
func (p *Platform) ServeOps(ctx context.Context, lis net.Listener) error {
	return httpserver.Serve(ctx, httpserver.New(p.Health.Mux(p.Tel.MetricsHandler())), lis, 5*time.Second)
}

// ListenAndServe opens a service's two listeners, its own (gRPC, or the
// gateway's partners' HTTP) on addr and the operator address on opsAddr,
// and hands both to serve, which owns them from then on: a service's Run,
// over the Serve its tests call with listeners of their own. It closes
// the first if the second fails.
func ListenAndServe(addr, opsAddr string, serve func(lis, opsLis net.Listener) error) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	opsLis, err := net.Listen("tcp", opsAddr)
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("listen %s: %w", opsAddr, err)
	}
	return serve(lis, opsLis)
}

// Every calls f every d until ctx ends; it is the body of a background
// loop's Run method.
func Every(ctx context.Context, d time.Duration, f func(ctx context.Context)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f(ctx)
		}
	}
}
