// Package app wires Base C: config, Mongo store, caches, AMQP consumers and
// publishers, and the gRPC server.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/consumer"
	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/platform"
	"github.com/strata-bureau/strata/pkg/readcache"
	"github.com/strata-bureau/strata/pkg/telemetry"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/base-c/internal/accounts"
	"github.com/strata-bureau/strata/services/base-c/internal/activity"
	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
	"github.com/strata-bureau/strata/services/base-c/internal/events"
	"github.com/strata-bureau/strata/services/base-c/internal/grpcapi"
	"github.com/strata-bureau/strata/services/base-c/internal/store"
)

// Prefix of Base C's environment variables.
const Prefix = "BASEC_"

// Config of Base C.
type Config struct {
	// Service: operator address (default 127.0.0.1:9301), mTLS material
	// (the server certificate and the CA callers chain to), broker,
	// logging, telemetry.
	config.Service
	// GRPC: address (default 127.0.0.1:7301) and reflection; Store: Mongo
	// (database default strata_basec) and the Argon2id cost of passwords.
	config.GRPC
	Store
	// Replica: this replica's id (default: host name and process id).
	config.Replica
	// DataQueue is the shared AMQP queue (override only in tests).
	DataQueue string `env:"AMQP_DATA_QUEUE, default=basec.events"`

	AuthCacheTTL time.Duration `env:"AUTH_CACHE_TTL, default=60s"`
	AuthMaxCold  int           `env:"AUTH_MAX_COLD, default=2"`
	// Failed passwords slow down only the (account, partner, client
	// address) that fails: THROTTLE_FREE failures pass, then delays from
	// THROTTLE_BASE doubling to THROTTLE_MAX; counts halve every
	// THROTTLE_HALF_LIFE. SOURCE_FAILURE_LIMIT failures a minute per
	// (partner, client address) across accounts block that source.
	ThrottleFree       int           `env:"THROTTLE_FREE, default=3"`
	ThrottleBase       time.Duration `env:"THROTTLE_BASE, default=1s"`
	ThrottleMax        time.Duration `env:"THROTTLE_MAX, default=1m"`
	ThrottleHalfLife   time.Duration `env:"THROTTLE_HALF_LIFE, default=5m"`
	SourceFailureLimit int           `env:"SOURCE_FAILURE_LIMIT, default=20"`
	CacheSize          int           `env:"ACTIVITY_CACHE_SIZE, default=100000"`
	LatestMovements    int           `env:"LATEST_MOVEMENTS, default=10"`
	ProcessedRetention time.Duration `env:"PROCESSED_RETENTION, default=168h"`

	// BootstrapUser and BootstrapPassword, when set, create this account at
	// start if it does not exist (the local stack's demo account); it is an
	// admin account when BootstrapAdmin is true.
	BootstrapUser     string        `env:"BOOTSTRAP_USER"`
	BootstrapPassword config.Secret `env:"BOOTSTRAP_PASSWORD"`
	BootstrapAdmin    bool          `env:"BOOTSTRAP_ADMIN, default=false"`

	// mTLS: the identities allowed per method group.
	ClientsRead     config.List `env:"CLIENTS_READ, default=gateway"`
	ClientsAccounts config.List `env:"CLIENTS_ACCOUNTS, default=basec-admin"`
	// ClientsSubject may read the data subject's report (SubjectService).
	ClientsSubject config.List `env:"CLIENTS_SUBJECT, default=gateway"`
	// ClientsTrusted may pass the partner's address and id in metadata.
	ClientsTrusted config.List `env:"CLIENTS_TRUSTED, default=gateway"`
	// AMQPProducers names the broker user that owns each event type this
	// service consumes ("type=user|user;..."); events of a type from any
	// other user are dead-lettered and counted.
	AMQPProducers amqp.Producers `env:"AMQP_PRODUCERS, default=cpf.queried=gateway;card.purchase.recorded=strata-ingest;financial.movement.recorded=strata-ingest;basec.cache.invalidated=base-c;basec.credential.invalidated=base-c;basec.credential.failed=base-c"`
}

// Access is Base C's allow-list of mTLS caller identities: the gateway
// reads activity; account management is for a named admin tool.
func Access(cfg *Config) grpcserver.Access {
	return grpcserver.Access{Guard: "/basec.v1.", TrustMetadata: cfg.ClientsTrusted, Groups: []grpcserver.Group{
		{Name: "read", Methods: []string{"/basec.v1.ActivityService/"}, Allowed: cfg.ClientsRead},
		{Name: "accounts", Methods: []string{"/basec.v1.AccountService/"}, Allowed: cfg.ClientsAccounts},
	}}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	errs := config.Errors(&c.Service, &c.GRPC, &c.Replica)
	if c.ArgonMemoryKiB < 19456 || c.ArgonTime < 2 && c.ArgonMemoryKiB < 46*1024 {
		errs = append(errs, errors.New("ARGON2_MEMORY_KIB/ARGON2_TIME below OWASP's minimum (19456 KiB, t=2)"))
	}
	if c.AuthMaxCold < 1 || c.AuthMaxCold > 64 {
		errs = append(errs, errors.New("AUTH_MAX_COLD must be 1..64"))
	}
	// A setting of zero or less used to mean its default, unsaid: an
	// operator who wrote THROTTLE_FREE=0 got three free failures.
	if c.AuthCacheTTL <= 0 || c.ThrottleBase <= 0 || c.ThrottleMax <= 0 || c.ThrottleHalfLife <= 0 || c.ProcessedRetention <= 0 {
		errs = append(errs, errors.New("AUTH_CACHE_TTL, THROTTLE_BASE, THROTTLE_MAX, THROTTLE_HALF_LIFE and PROCESSED_RETENTION must be positive"))
	}
	if c.ThrottleFree < 1 || c.SourceFailureLimit < 1 || c.CacheSize < 1 || c.LatestMovements < 1 {
		errs = append(errs, errors.New("THROTTLE_FREE, SOURCE_FAILURE_LIMIT, ACTIVITY_CACHE_SIZE and LATEST_MOVEMENTS must be 1 or more"))
	}
	if (c.BootstrapUser == "") != c.BootstrapPassword.IsZero() {
		errs = append(errs, errors.New("BOOTSTRAP_USER and BOOTSTRAP_PASSWORD go together"))
	}
	return errors.Join(errs...)
}

// Load reads the configuration.
func Load(ctx context.Context, l config.Lookuper) (*Config, error) {
	c := Config{Service: config.Service{OpsAddr: "127.0.0.1:9301"}, GRPC: config.GRPC{GRPCAddr: "127.0.0.1:7301"}, Store: defaultStore()}
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return nil, err
	}
	c.Replica.Default()
	return &c, nil
}

// Run listens on the configured addresses and serves Base C until ctx ends.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	return platform.ListenAndServe(cfg.GRPCAddr, cfg.OpsAddr, func(glis, hlis net.Listener) error {
		return Serve(ctx, cfg, logger, glis, hlis)
	})
}

// Serve serves Base C on the given gRPC and HTTP (health, metrics)
// listeners until ctx ends.
func Serve(ctx context.Context, cfg *Config, logger *slog.Logger, glis, hlis net.Listener) error {
	defer func() { _ = glis.Close(); _ = hlis.Close() }()
	p, err := platform.Start(ctx, "base-c", cfg.ReplicaID, &cfg.Service, logger)
	if err != nil {
		return err
	}
	defer p.Close(ctx)

	mdb, err := mongodb.OpenService(ctx, cfg.MongoURI.Reveal(), cfg.MongoDatabase, "base-c", p.Tel.Meter("base-c"))
	if err != nil {
		return err
	}
	defer mdb.Close(ctx)
	st, dedupe := store.New(mdb.DB), mdb.Dedupe
	if err := mdb.EnsureIndexes(ctx, st); err != nil {
		return err
	}
	bc := &events.Broadcaster{Publisher: p.Publisher(0), ReplicaID: cfg.ReplicaID, Logger: logger}
	authn, err := newAuth(cfg, st, bc, logger)
	if err != nil {
		return err
	}
	acts, err := newActivity(cfg, p, st, bc)
	if err != nil {
		return err
	}
	if err := observeBaseC(p.Tel.Meter("base-c"), acts, authn); err != nil {
		return err
	}
	mgr, err := newAccounts(ctx, cfg, st, authn, bc)
	if err != nil {
		return err
	}

	evs, err := newConsumers(ctx, cfg, p, dedupe, acts, authn)
	if err != nil {
		return err
	}
	srv, err := newServer(cfg, p, authn, acts, mgr)
	if err != nil {
		return err
	}
	logger.Info("base-c serving", "grpc", glis.Addr().String(), "ops", hlis.Addr().String(), "replica", cfg.ReplicaID)

	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, glis, 10*time.Second) })
	g.Go(func() error { return p.ServeOps(gctx, hlis) })
	// Base C stays in the gateway's rotation while Mongo is down: it answers
	// from cache, marked stale. So its grpc.health.v1 status is SERVING while
	// the process runs, and the checks (whose Mongo probe goes through the
	// breaker, opening it during an outage) only feed /readyz. It turns
	// SERVING only once its broadcast queue is first subscribed: until then
	// it would miss other replicas' invalidations, and the subscription
	// drops the cache, so answers cached before it would not be there as
	// the stale fallback during a Mongo outage.
	g.Go(func() error {
		return evs.cast.WhenSubscribed(gctx, func() { srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING) })
	})
	g.Go(func() error { p.Health.Drive(gctx, nil, time.Second); return nil })
	g.Go(func() error { return evs.RunData(gctx) })
	g.Go(func() error { return evs.cast.Run(gctx) })
	g.Go(func() error { return bc.RunCredentialFailures(gctx, 100*time.Millisecond) })
	g.Go(func() error { return evs.Data.Run(gctx) })
	return g.Wait()
}

// consumers are Base C's AMQP consumers: the data queue the replicas
// share and this replica's broadcast queue.
type consumers struct {
	*events.Consumer
	p    *platform.Platform
	data amqp.Queue
	opts amqp.ConsumerOptions
	// cast applies the other replicas' invalidations; every subscription
	// drops the activity and credential caches.
	cast *platform.Broadcast
}

// newConsumers declares the shared data queue before serving, so no event
// published after this replica reports ready can be unroutable.
func newConsumers(ctx context.Context, cfg *Config, p *platform.Platform, dedupe consumer.Dedupe, acts *activity.Service, authn *auth.Authenticator) (*consumers, error) {
	evs, err := events.New(acts, authn, cfg.ReplicaID, dedupe, consumer.Options{Retention: cfg.ProcessedRetention, Meter: p.Tel.Meter("base-c"), Logger: p.Logger})
	if err != nil {
		return nil, err
	}
	c := &consumers{Consumer: evs, p: p,
		opts: amqp.ConsumerOptions{Prefetch: 256, Tag: "base-c-" + cfg.ReplicaID, Propagator: p.Tel.Propagator, Producers: cfg.AMQPProducers, OnForeign: evs.Data.OnForeign}}
	data, cast := events.Queues(cfg.DataQueue, cfg.ReplicaID)
	data.Exchange, cast.Exchange = cfg.Exchange, cfg.Exchange
	c.data = data
	c.cast = p.Broadcast(cast, c.opts, evs.HandleInvalidation, func() {
		acts.InvalidateAll()
		authn.InvalidateAll()
	})
	return c, p.Declare(ctx, c.data)
}

// RunData consumes the data queue in batches of up to 256 events gathered
// within 50 ms: cpf.queried is coalesced per CPF and written in bulk, so a
// last query is visible well within 250 ms while the store sees one write
// per batch rather than per lookup.
func (c *consumers) RunData(ctx context.Context) error {
	return c.p.MQ.ConsumeBatch(ctx, c.data, c.opts, amqp.BatchOptions{Max: 256, Wait: 50 * time.Millisecond}, c.HandleDataBatch)
}

// newAuth is the authenticator; the wrong passwords it counts are shared
// with the other replicas through bc.
func newAuth(cfg *Config, st *store.Store, bc *events.Broadcaster, logger *slog.Logger) (*auth.Authenticator, error) {
	return auth.New(st, auth.Options{OnFailure: bc.CredentialFailed,
		CacheTTL: cfg.AuthCacheTTL, MaxCold: cfg.AuthMaxCold, FreeFailures: cfg.ThrottleFree,
		ThrottleBase: cfg.ThrottleBase, ThrottleMax: cfg.ThrottleMax, ThrottleHalfLife: cfg.ThrottleHalfLife,
		SourceFailureLimit: cfg.SourceFailureLimit, Params: argonParams(cfg),
	}, logger)
}

func argonParams(cfg *Config) auth.Params {
	return auth.Params{MemoryKiB: cfg.ArgonMemoryKiB, Time: cfg.ArgonTime, Threads: 1}
}

// newActivity is the cached activity service behind the Mongo breaker,
// whose readiness probe feeds the breaker too.
func newActivity(cfg *Config, p *platform.Platform, st *store.Store, bc *events.Broadcaster) (*activity.Service, error) {
	// Three failures, not the default five: reads are served from cache, so
	// the breaker is mostly fed by the readiness probe below (one ping a
	// second); with five, answers were flagged stale only ~11 s into a Mongo
	// outage (chaos scenario 4). A false open costs little here: cached
	// answers flagged stale for OpenFor.
	mongoBreaker := p.Breakers.New(breaker.Config{Name: "base-c->mongo", IsFailure: activity.IsStoreFailure,
		ConsecutiveFailures: 3, OpenFor: 3 * time.Second})
	// The readiness probe goes through the Mongo breaker, so an outage
	// opens it (and reads switch to stale cache) even when every read hits
	// the cache. A ping on the local network answers in milliseconds:
	// 500 ms (not the checker's 2 s) lets three failed probes open the
	// breaker in ~3 s.
	p.Health.Add("mongo", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return mongoBreaker.Run(func() error { return st.Ping(ctx) })
	})
	return activity.New(st, mongoBreaker, activity.Options{
		CacheSize: cfg.CacheSize, LatestMovements: cfg.LatestMovements, Broadcast: bc.ActivityChanged, BroadcastQuery: bc.QueryRecorded, BroadcastQueries: bc.QueriesRecorded,
	}, p.Logger)
}

// newAccounts is account management; it creates the bootstrap account
// when configured and missing.
func newAccounts(ctx context.Context, cfg *Config, st *store.Store, authn *auth.Authenticator, bc *events.Broadcaster) (*accounts.Manager, error) {
	mgr := &accounts.Manager{Store: st, Params: argonParams(cfg), Invalidate: func(ctx context.Context, user string) error {
		authn.Invalidate(user)
		return bc.CredentialChanged(ctx, user)
	}}
	if cfg.BootstrapUser != "" {
		err := mgr.Create(ctx, cfg.BootstrapUser, cfg.BootstrapPassword.Reveal(), cfg.BootstrapAdmin)
		if err != nil && !errors.Is(err, domain.ErrExists) {
			return nil, fmt.Errorf("bootstrap account: %w", err)
		}
	}
	return mgr, nil
}

// newServer is Base C's gRPC server: the caller's certificate is checked
// before any password is hashed.
func newServer(cfg *Config, p *platform.Platform, authn *auth.Authenticator, acts *activity.Service, mgr *accounts.Manager) (*grpcserver.Server, error) {
	srv, err := p.GRPCServer(cfg.GRPC, grpcserver.Options{
		UnaryInterceptors: []grpc.UnaryServerInterceptor{Access(cfg).Unary(), grpcapi.AuthInterceptor(authn)},
	})
	if err != nil {
		return nil, err
	}
	basecv1.RegisterActivityServiceServer(srv, &grpcapi.ActivityServer{Activity: acts, Logger: p.Logger})
	basecv1.RegisterAccountServiceServer(srv, &grpcapi.AccountServer{Accounts: mgr})
	subjectv1.RegisterSubjectServiceServer(srv, &grpcapi.SubjectServer{Activity: acts, Allowed: cfg.ClientsSubject})
	return srv, nil
}

// observeBaseC exports the cache's hits and misses
// (strata_basec_cache_lookups_total by result; the hit ratio is
// hit / (hit + miss)) and the Argon2id checks running now
// (strata_basec_argon2_cold_checks_in_flight).
func observeBaseC(m metric.Meter, acts *activity.Service, authn *auth.Authenticator) error {
	if err := telemetry.ObserveGauge(m, "strata_basec_argon2_cold_checks_in_flight",
		"Argon2id password checks (credentials not in the verified cache) running now.", authn.ColdInFlight); err != nil {
		return err
	}
	return readcache.ObserveLookups(m, "strata_basec_cache_lookups_total",
		"Activity reads answered from the in-process cache (result=hit) or loaded from the store (result=miss).", acts.CacheStats)
}
