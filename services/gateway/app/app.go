// Package app wires the gateway: its database, the three bases, the API
// key middleware and limits, the built-in OAuth2 issuer, the public API
// and operations endpoints.
package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/httpserver"
	"github.com/strata-bureau/strata/pkg/outbox"
	"github.com/strata-bureau/strata/pkg/platform"
	"github.com/strata-bureau/strata/pkg/postgres"
	"github.com/strata-bureau/strata/services/gateway/internal/api"
	"github.com/strata-bureau/strata/services/gateway/internal/events"
	"github.com/strata-bureau/strata/services/gateway/internal/issuer"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Prefix of the gateway's environment variables.
const Prefix = "GATEWAY_"

// Config of the gateway.
type Config struct {
	// Service: operator address (default 127.0.0.1:9080: /metrics, the
	// detailed /readyz, pprof; the partners' port has none of it), mTLS
	// material (the gateway's client certificate, identity "gateway", and
	// the CA every base's server certificate chains to), broker, logging,
	// telemetry.
	config.Service
	HTTPAddr    string        `env:"HTTP_ADDR, default=127.0.0.1:8080"`
	PublicURL   string        `env:"PUBLIC_URL"`
	DatabaseURL config.Secret `env:"DATABASE_URL, required"`
	KeyPepper   config.Secret `env:"KEY_PEPPER, required"`

	// Each hop to a base is mutual TLS (Service's certificate and CA).
	BaseAAddr       string      `env:"BASEA_ADDR, default=127.0.0.1:7101"`
	BaseAServerName string      `env:"BASEA_SERVER_NAME, default=base-a"`
	BaseBAddrs      config.List `env:"BASEB_ADDRS, default=127.0.0.1:7201,127.0.0.1:7202"`
	BaseBServerName string      `env:"BASEB_SERVER_NAME, default=base-b"`
	BaseCAddrs      config.List `env:"BASEC_ADDRS, default=127.0.0.1:7301,127.0.0.1:7302"`
	BaseCServerName string      `env:"BASEC_SERVER_NAME, default=base-c"`

	IssuerEnabled  bool          `env:"ISSUER_ENABLED, default=true"`
	IssuerKeys     config.Secret `env:"ISSUER_KEYS"`
	IssuerAudience string        `env:"ISSUER_AUDIENCE, default=strata-base-b"`
	TokenTTL       time.Duration `env:"TOKEN_TTL, default=10m"`

	BootstrapFile string `env:"BOOTSTRAP_FILE"`

	// AuditVerifierKey, when set, makes the gateway a witness of Base A's
	// verifiable audit log: every signed head (audit.checkpoint.signed) is
	// checked against it and kept, once proven consistent, in the
	// gateway's database and appended to WitnessFile (if set).
	AuditVerifierKey string `env:"AUDIT_VERIFIER_KEY"`
	WitnessFile      string `env:"WITNESS_FILE"`
	// WitnessDenseFor is how long every witnessed head is kept in the
	// database; older ones are thinned hourly to the last of each UTC day.
	WitnessDenseFor time.Duration `env:"WITNESS_DENSE_FOR, default=168h"`
	// ProcessingRecordsFile (JSON, the shape GET /v1/audit/processing-records
	// serves) describes purposes, data per base and retention; empty: the
	// built-in description. Recipients come from the partner registry.
	ProcessingRecordsFile string `env:"PROCESSING_RECORDS_FILE"`
	// AMQPProducers names the broker user that owns each event type the
	// gateway consumes (the witness: audit.checkpoint.signed from Base A).
	AMQPProducers amqp.Producers `env:"AMQP_PRODUCERS, default=audit.checkpoint.signed=base-a"`

	RatePerSec  float64       `env:"RATE_PER_SECOND, default=50"`
	Burst       int           `env:"BURST, default=100"`
	DailyQuota  int64         `env:"DAILY_QUOTA, default=100000"`
	KeyCacheTTL time.Duration `env:"KEY_CACHE_TTL, default=5s"`
	// TrustedProxies (CIDRs or addresses, comma-separated) may tell the
	// client's address in X-Forwarded-For; from anyone else it is ignored.
	TrustedProxies api.Proxies `env:"TRUSTED_PROXIES"`
	// AuthFailureBurst failed authentications (API keys, OAuth2 clients)
	// per client address, refilled at AuthFailuresPerMinute; past them the
	// address is refused before any database work.
	AuthFailureBurst      int     `env:"AUTH_FAILURE_BURST, default=20"`
	AuthFailuresPerMinute float64 `env:"AUTH_FAILURES_PER_MINUTE, default=60"`
	// PerPartner caps one partner's calls in flight to a base (default: a
	// quarter of BULKHEAD); ExpensiveCalls bounds audit-log reads and
	// verifications (and exports) in flight in total, one per partner.
	PerPartner     int `env:"PER_PARTNER_IN_FLIGHT"`
	ExpensiveCalls int `env:"EXPENSIVE_CALLS, default=4"`
	// QuotaSyncInterval is how often daily-quota counts are shared with the
	// other replicas; a quota can overshoot by what they admit meanwhile.
	QuotaSyncInterval time.Duration `env:"QUOTA_SYNC_INTERVAL, default=1s"`
	MaxBodyBytes      int64         `env:"MAX_BODY_BYTES, default=65536"`
	BackendTimeout    time.Duration `env:"BACKEND_TIMEOUT, default=2s"`
	// Base B and C answer in about a millisecond. A hung base is cut by
	// the health probes (~0.5-0.7 s, cutting the calls in flight on it
	// too), not by this deadline; 1 s rides out the few hundred
	// milliseconds a shared store or a saturated machine can stall (make
	// abuse saw 250 ms answered 503 to a well-behaved partner during a
	// 360 ms FerretDB stall on both Base B replicas).
	BaseBTimeout time.Duration `env:"BASEB_TIMEOUT, default=1s"`
	BaseCTimeout time.Duration `env:"BASEC_TIMEOUT, default=1s"`
	Bulkhead     int           `env:"BULKHEAD, default=256"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	errs := config.Errors(&c.Service)
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, errors.New("HTTP_ADDR must be host:port"))
	}
	if p, err := base64.StdEncoding.DecodeString(c.KeyPepper.Reveal()); err != nil || len(p) < 32 {
		errs = append(errs, errors.New("KEY_PEPPER must be at least 32 bytes, base64-encoded"))
	}
	if c.IssuerEnabled && c.IssuerKeys.IsZero() {
		errs = append(errs, errors.New("ISSUER_KEYS is required while ISSUER_ENABLED"))
	}
	if c.QuotaSyncInterval < 10*time.Millisecond || c.QuotaSyncInterval > time.Minute {
		errs = append(errs, errors.New("QUOTA_SYNC_INTERVAL must be between 10ms and 1m"))
	}
	if c.RatePerSec <= 0 || c.Burst < 1 || c.DailyQuota < 1 {
		errs = append(errs, errors.New("RATE_PER_SECOND, BURST and DAILY_QUOTA must be positive"))
	}
	if c.AuthFailureBurst < 1 || c.AuthFailuresPerMinute <= 0 {
		errs = append(errs, errors.New("AUTH_FAILURE_BURST and AUTH_FAILURES_PER_MINUTE must be positive"))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 10<<20 {
		errs = append(errs, errors.New("MAX_BODY_BYTES must be 1 KiB to 10 MiB"))
	}
	if c.WitnessDenseFor < time.Hour {
		errs = append(errs, errors.New("WITNESS_DENSE_FOR must be at least 1h"))
	}
	return errors.Join(errs...)
}

// Load reads the configuration.
func Load(ctx context.Context, l config.Lookuper) (*Config, error) {
	c := Config{Service: config.Service{OpsAddr: "127.0.0.1:9080"}}
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return nil, err
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	return &c, nil
}

type clients struct{ st *store.Store }

func (c clients) Client(ctx context.Context, id string) (issuer.Client, error) {
	cl, err := c.st.GetOAuthClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		err = issuer.ErrUnknownClient
	}
	return issuer.Client{ID: cl.ID, SecretHash: cl.SecretHash, Scopes: cl.Scopes}, err
}

// MigrateConfig is what `gateway migrate` reads (same GATEWAY_ prefix):
// the owner's URL, used only by this command (a Kubernetes Job, make run),
// and the application role that gets the rights it needs on every table.
type MigrateConfig struct {
	MigrateDatabaseURL config.Secret `env:"MIGRATE_DATABASE_URL, required"`
	AppDBRole          string        `env:"APP_DB_ROLE, default=strata_gateway_app"`
}

// RunMigrate applies the gateway's migrations as the owner and grants the
// application role read and write on the tables (never DDL or ownership).
func RunMigrate(ctx context.Context, l config.Lookuper) error {
	var c MigrateConfig
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return store.MigrateAndGrant(ctx, c.MigrateDatabaseURL.Reveal(), c.AppDBRole)
}

// Run listens on the configured addresses and serves until ctx ends.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	return platform.ListenAndServe(cfg.HTTPAddr, cfg.OpsAddr, func(lis, opsLis net.Listener) error {
		return Serve(ctx, cfg, logger, lis, opsLis)
	})
}

// Serve serves the gateway on lis (partners) and opsLis (operators) until
// ctx ends.
func Serve(ctx context.Context, cfg *Config, logger *slog.Logger, lis, opsLis net.Listener) error {
	defer func() { _ = lis.Close(); _ = opsLis.Close() }()
	pepper, _ := base64.StdEncoding.DecodeString(cfg.KeyPepper.Reveal()) // checked by Validate
	p, err := platform.Start(ctx, "gateway", "", &cfg.Service, logger)
	if err != nil {
		return err
	}
	defer p.Close(ctx)

	pool, err := postgres.Connect(ctx, cfg.DatabaseURL.Reveal(), postgres.Options{MaxConns: 16, WaitFor: 30 * time.Second})
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	if err := outbox.ObserveBacklog(p.Tel.Meter("gateway"), pool); err != nil {
		return err
	}
	bases, err := newBackends(cfg, p)
	if err != nil {
		return err
	}
	defer bases.Close()
	emitter := events.New(p.Publisher(2*time.Second), st, logger)

	w := &web{cfg: cfg, p: p, st: st, bases: bases, pepper: pepper, emitter: emitter}
	partners, err := w.partnerHandler()
	if err != nil {
		return err
	}
	if cfg.BootstrapFile != "" {
		if err := bootstrap(ctx, st, pepper, cfg.BootstrapFile, cfg); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	witnessQ, err := newWitness(cfg, p, st, bases.A)
	if err != nil {
		return err
	}
	logger.Info("gateway serving", "http", lis.Addr().String(), "ops", opsLis.Addr().String(), "issuer", cfg.IssuerEnabled)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserver.Serve(gctx, httpserver.New(partners), lis, 15*time.Second) })
	g.Go(func() error { return httpserver.Serve(gctx, httpserver.New(w.opsHandler()), opsLis, 5*time.Second) })
	for _, pool := range bases.all() {
		// 250 ms: a hung replica must leave the rotation well within the 1 s
		// the chaos suite allows for failing fast (see backend.WatchHealth).
		g.Go(func() error { pool.WatchHealth(gctx, 250*time.Millisecond); return nil })
	}
	g.Go(func() error { emitter.Run(gctx); return nil })
	g.Go(func() error { return flushKeysLastUsed(gctx, w.keys, 5*time.Second) })
	// Daily quotas are shared by every replica through the database.
	g.Go(func() error { return w.keys.Limiter.RunSync(gctx, st, cfg.QuotaSyncInterval, logger) })
	if witnessQ != nil {
		g.Go(func() error { return witnessQ(gctx) })
	}
	return g.Wait()
}
