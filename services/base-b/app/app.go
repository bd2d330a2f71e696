// Package app wires Base B: config, OIDC verifier, Mongo store, the
// debt-summary consumer and the gRPC server.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/platform"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/authz"
	"github.com/strata-bureau/strata/services/base-b/internal/grpcapi"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

// Prefix of Base B's environment variables.
const Prefix = "BASEB_"

// Config of Base B.
type Config struct {
	// Service: operator address (default 127.0.0.1:9201), mTLS material
	// (the server certificate and the CA callers chain to), broker,
	// logging, telemetry.
	config.Service
	// GRPC: address (default 127.0.0.1:7201) and reflection; Mongo: the
	// store (database default strata_baseb).
	config.GRPC
	config.Mongo
	// Queue is the debt summaries' queue the replicas share; each
	// replica's broadcast queue is named after it (Queue.broadcast.ID).
	Queue string `env:"AMQP_QUEUE, default=baseb.debt-summaries"`
	// Replica: this replica's id (default: host name and process id).
	config.Replica
	// CacheSize bounds the profile cache (CPFs); CacheTTL reloads an
	// entry that long after it was cached, a bound on staleness should a
	// cross-replica invalidation be lost (0: never).
	CacheSize int           `env:"PROFILE_CACHE_SIZE, default=100000"`
	CacheTTL  time.Duration `env:"PROFILE_CACHE_TTL, default=10m"`
	// ProcessedRetention is how long applied message IDs are kept for
	// dedupe (as Base C): pruned hourly, so the collection is bounded by
	// the redelivery window, not by uptime.
	ProcessedRetention time.Duration `env:"PROCESSED_RETENTION, default=168h"`
	// Verifier: the OAuth2 provider Base B trusts (OIDC_ISSUER) and how
	// its access tokens are checked (OIDC_*, TOKEN_LEEWAY).
	Verifier authz.Config

	// mTLS: the identities allowed per method group.
	ClientsRead   config.List `env:"CLIENTS_READ, default=gateway"`
	ClientsExport config.List `env:"CLIENTS_EXPORT, default=baseb-export"`
	// ClientsSubject may read the data subject's report (SubjectService).
	ClientsSubject config.List `env:"CLIENTS_SUBJECT, default=gateway"`
	ClientsWrite   config.List `env:"CLIENTS_WRITE, default=baseb-loader"`
	// ClientsTrusted may pass the partner's address and id in metadata.
	ClientsTrusted config.List `env:"CLIENTS_TRUSTED, default=gateway"`
	// AMQPProducers names the broker user that owns each event type this
	// service consumes ("type=user|user;..."); events of a type from any
	// other user are dead-lettered and counted.
	AMQPProducers amqp.Producers `env:"AMQP_PRODUCERS, default=debt.summary.changed=base-a;baseb.cache.invalidated=base-b"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	errs := config.Errors(&c.Service, &c.GRPC, &c.Replica, &c.Verifier)
	if c.CacheSize < 1 || c.CacheTTL < 0 {
		errs = append(errs, errors.New("PROFILE_CACHE_SIZE must be positive and PROFILE_CACHE_TTL not negative"))
	}
	if c.ProcessedRetention <= 0 { // zero or less used to mean the default, unsaid
		errs = append(errs, errors.New("PROCESSED_RETENTION must be positive"))
	}
	return errors.Join(errs...)
}

// Load reads the configuration.
func Load(ctx context.Context, l config.Lookuper) (*Config, error) {
	c := Config{Service: config.Service{OpsAddr: "127.0.0.1:9201"}, GRPC: config.GRPC{GRPCAddr: "127.0.0.1:7201"},
		Mongo: config.Mongo{MongoDatabase: "strata_baseb"}}
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return nil, err
	}
	c.Replica.Default()
	return &c, nil
}

// Access is Base B's allow-list of mTLS caller identities: the gateway
// reads, baseb-export exports, named internal loaders write.
func Access(cfg *Config) grpcserver.Access {
	return grpcserver.Access{Guard: "/baseb.v1.", TrustMetadata: cfg.ClientsTrusted, Groups: []grpcserver.Group{
		{Name: "read", Methods: []string{"/baseb.v1.ProfileService/GetProfile", "/baseb.v1.ProfileService/GetScore"}, Allowed: cfg.ClientsRead},
		{Name: "export", Methods: []string{"/baseb.v1.ProfileService/ExportFeatures"}, Allowed: cfg.ClientsExport},
		{Name: "write", Methods: []string{"/baseb.v1.ProfileService/UpsertProfile", "/baseb.v1.ProfileService/AddAsset",
			"/baseb.v1.ProfileService/RemoveAsset", "/baseb.v1.ProfileService/AddIncomeSource", "/baseb.v1.ProfileService/RemoveIncomeSource"},
			Allowed: cfg.ClientsWrite},
	}}
}

// Run listens on the configured addresses and serves until ctx ends.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	return platform.ListenAndServe(cfg.GRPCAddr, cfg.OpsAddr, func(glis, hlis net.Listener) error {
		return Serve(ctx, cfg, logger, glis, hlis)
	})
}

// Serve serves Base B on the given listeners until ctx ends.
func Serve(ctx context.Context, cfg *Config, logger *slog.Logger, glis, hlis net.Listener) error {
	defer func() { _ = glis.Close(); _ = hlis.Close() }()
	p, err := platform.Start(ctx, "base-b", cfg.ReplicaID, &cfg.Service, logger)
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	verifier, err := authz.NewVerifier(ctx, authz.Options{Config: cfg.Verifier,
		Breaker: p.Breakers.New(breaker.Config{Name: "base-b->oidc", OpenFor: 2 * time.Second})})
	if err != nil {
		return err
	}

	mdb, err := mongodb.OpenService(ctx, cfg.MongoURI.Reveal(), cfg.MongoDatabase, "base-b", p.Tel.Meter("base-b"))
	if err != nil {
		return err
	}
	defer mdb.Close(ctx)
	st, dedupe := store.New(mdb.DB), mdb.Dedupe
	if err := mdb.EnsureIndexes(ctx, st); err != nil {
		return err
	}
	mongoBreaker := p.Breakers.New(breaker.Config{Name: "base-b->mongo", IsFailure: grpcapi.IsStoreFailure, OpenFor: 3 * time.Second})
	p.Health.Add("mongo", func(ctx context.Context) error { return mongoBreaker.Run(func() error { return st.Ping(ctx) }) })

	profs, err := newProfiles(cfg, p, st, mongoBreaker)
	if err != nil {
		return err
	}
	evs, err := newConsumers(ctx, cfg, p, profs, dedupe, mongoBreaker)
	if err != nil {
		return err
	}

	api := &grpcapi.Server{Store: st, Profiles: profs, Breaker: mongoBreaker, Logger: logger, Now: time.Now}
	srv, err := newServer(cfg, p, verifier, api, st)
	if err != nil {
		return err
	}
	logger.Info("base-b serving", "grpc", glis.Addr().String(), "ops", hlis.Addr().String(), "issuer", cfg.Verifier.Issuer, "replica", cfg.ReplicaID)

	// Until its broadcast queue is first subscribed a replica would miss
	// the others' invalidations (and the subscription drops the cache):
	// it reports NOT_SERVING until then, and from then on follows its
	// checks.
	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return api.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx, glis, 10*time.Second) })
	g.Go(func() error { return p.ServeOps(gctx, hlis) })
	g.Go(func() error {
		return evs.cast.WhenSubscribed(gctx, func() { p.Health.Drive(gctx, srv.Health, time.Second) })
	})
	g.Go(func() error { return evs.RunData(gctx) })
	g.Go(func() error { return evs.cast.Run(gctx) })
	g.Go(func() error { return evs.summaries.Run(gctx) })
	return g.Wait()
}

// newServer is Base B's gRPC server: the caller's certificate is checked
// before its token.
func newServer(cfg *Config, p *platform.Platform, verifier *authz.Verifier, api *grpcapi.Server, st *store.Store) (*grpcserver.Server, error) {
	access := Access(cfg)
	srv, err := p.GRPCServer(cfg.GRPC, grpcserver.Options{
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{access.Unary(), verifier.Unary()},
		StreamInterceptors: []grpc.StreamServerInterceptor{access.Stream(), verifier.Stream()},
	})
	if err != nil {
		return nil, err
	}
	basebv1.RegisterProfileServiceServer(srv, api)
	subjectv1.RegisterSubjectServiceServer(srv, &grpcapi.SubjectServer{Store: st, Allowed: cfg.ClientsSubject})
	return srv, nil
}
