// Package app wires Base B: config, OIDC verifier, Mongo store, the
// debt-summary consumer and the gRPC server.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/health"
	"github.com/strata-bureau/strata/pkg/httpserver"
	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/retry"
	"github.com/strata-bureau/strata/pkg/telemetry"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/authz"
	"github.com/strata-bureau/strata/services/base-b/internal/events"
	"github.com/strata-bureau/strata/services/base-b/internal/grpcapi"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

// Prefix of Base B's environment variables.
const Prefix = "BASEB_"

// Config of Base B.
type Config struct {
	GRPCAddr      string        `env:"GRPC_ADDR, default=127.0.0.1:7201"`
	OpsAddr       string        `env:"OPS_ADDR, default=127.0.0.1:9201"`
	MongoURI      config.Secret `env:"MONGODB_URI, required"`
	MongoDatabase string        `env:"MONGODB_DATABASE, default=strata_baseb"`
	AMQPURL       config.Secret `env:"AMQP_URL, required"`
	Exchange      string        `env:"AMQP_EXCHANGE, default=strata.events"`
	Queue         string        `env:"AMQP_QUEUE, default=baseb.debt-summaries"`
	OIDCIssuer    string        `env:"OIDC_ISSUER, required"`
	OIDCAudience  string        `env:"OIDC_AUDIENCE, default=strata-base-b"`
	TokenLeeway   time.Duration `env:"TOKEN_LEEWAY, default=30s"`
	LogLevel      string        `env:"LOG_LEVEL, default=info"`
	OTLPEndpoint  string        `env:"OTLP_ENDPOINT"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
		errs = append(errs, errors.New("GRPC_ADDR must be host:port"))
	}
	if _, _, err := net.SplitHostPort(c.OpsAddr); err != nil {
		errs = append(errs, errors.New("OPS_ADDR must be host:port"))
	}
	if c.TokenLeeway < 0 || c.TokenLeeway > 5*time.Minute {
		errs = append(errs, errors.New("TOKEN_LEEWAY must be 0 to 5m"))
	}
	return errors.Join(errs...)
}

// Load reads the configuration.
func Load(ctx context.Context, l config.Lookuper) (*Config, error) {
	var c Config
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return nil, err
	}
	return &c, nil
}

// Run listens on the configured addresses and serves until ctx ends.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	glis, hlis, err := grpcserver.Listen(cfg.GRPCAddr, cfg.OpsAddr)
	if err != nil {
		return err
	}
	return Serve(ctx, cfg, logger, glis, hlis)
}

// Serve serves Base B on the given listeners until ctx ends.
func Serve(ctx context.Context, cfg *Config, logger *slog.Logger, glis, hlis net.Listener) error {
	defer func() { _ = glis.Close(); _ = hlis.Close() }()
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "base-b", OTLPEndpoint: cfg.OTLPEndpoint, OTLPInsecure: true})
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.WithoutCancel(ctx)) }()
	breakers, err := breaker.NewSet(tel.Meter("base-b"), logger)
	if err != nil {
		return err
	}
	verifier, err := authz.NewVerifier(ctx, authz.Options{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience, Leeway: cfg.TokenLeeway,
		Breaker: breakers.New(breaker.Config{Name: "base-b->oidc", OpenFor: 2 * time.Second})})
	if err != nil {
		return err
	}
	client, err := mongodb.Connect(ctx, cfg.MongoURI.Reveal(), mongodb.Options{AppName: "base-b", WaitFor: 30 * time.Second, Timeout: 3 * time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	st := store.New(client.Database(cfg.MongoDatabase))
	if err := retry.Do(ctx, 5, st.EnsureIndexes); err != nil {
		return err
	}
	mongoBreaker := breakers.New(breaker.Config{Name: "base-b->mongo", IsFailure: grpcapi.IsStoreFailure, OpenFor: 3 * time.Second})

	mq, err := amqp.Dial(ctx, amqp.Config{URL: cfg.AMQPURL.Reveal(), Name: "base-b", Logger: logger, Exchange: cfg.Exchange})
	if err != nil {
		return err
	}
	defer func() { _ = mq.Close() }()
	q := events.Queue(cfg.Queue)
	q.Exchange = cfg.Exchange
	// Declared before serving so nothing published once this replica is
	// up is unroutable; retried because replicas start together (a failed
	// declaration closes its channel).
	if err := retry.Do(ctx, 5, func(ctx context.Context) error {
		ch, err := mq.Channel(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = ch.Close() }()
		return q.Declare(ch)
	}); err != nil {
		return err
	}

	api := &grpcapi.Server{Store: st, Breaker: mongoBreaker, Logger: logger, Now: time.Now}
	srv := grpcserver.New(grpcserver.Options{
		Logger: logger, Telemetry: tel, Reflection: true,
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{verifier.Unary()},
		StreamInterceptors: []grpc.StreamServerInterceptor{verifier.Stream()},
	})
	basebv1.RegisterProfileServiceServer(srv, api)
	checker := health.New(breakers)
	checker.Add("mongo", func(ctx context.Context) error { return mongoBreaker.Run(func() error { return st.Ping(ctx) }) })
	checker.Add("amqp", mq.Check)
	dups, err := tel.Meter("base-b").Int64Counter("strata_events_duplicates_total",
		metric.WithDescription("Events dropped because their message_id was already applied."))
	if err != nil {
		return err
	}
	applied, err := tel.Meter("base-b").Int64Counter("strata_events_applied_total",
		metric.WithDescription("Events applied to the store."))
	if err != nil {
		return err
	}
	consumer := &events.Consumer{Store: st, Breaker: mongoBreaker,
		OnDuplicate: func() { dups.Add(context.Background(), 1) }, OnApplied: func() { applied.Add(context.Background(), 1) }}
	logger.Info("base-b serving", "grpc", glis.Addr().String(), "ops", hlis.Addr().String(), "issuer", cfg.OIDCIssuer)

	g, gctx := errgroup.WithContext(ctx)
	api.Start(gctx)
	g.Go(func() error { return srv.Serve(gctx, glis, 10*time.Second) })
	g.Go(func() error {
		return httpserver.Serve(gctx, httpserver.New(checker.Mux(tel.MetricsHandler())), hlis, 5*time.Second)
	})
	g.Go(func() error { checker.Drive(gctx, srv.Health, time.Second); return nil })
	g.Go(func() error {
		return mq.Consume(gctx, q, amqp.ConsumerOptions{Prefetch: 64, Tag: "base-b", Propagator: tel.Propagator}, consumer.Handle)
	})
	return g.Wait()
}
