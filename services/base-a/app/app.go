// Package app wires Base A: migrations, the encrypted store, the audit
// chainer, the outbox relay and the mTLS gRPC server.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/outbox"
	"github.com/strata-bureau/strata/pkg/platform"
	"github.com/strata-bureau/strata/pkg/postgres"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/crypto"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/grpcapi"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// Prefix of Base A's environment variables.
const Prefix = "BASEA_"

// Config of Base A.
type Config struct {
	// Service: operator address (default 127.0.0.1:9101), mTLS material
	// (the server certificate and the CA callers chain to), broker,
	// logging, telemetry.
	config.Service
	// GRPC: address (default 127.0.0.1:7101) and reflection.
	config.GRPC
	// DatabaseURL connects as the least-privileged application role.
	DatabaseURL config.Secret `env:"DATABASE_URL, required"`

	DataKeys        config.Secret `env:"DATA_KEYS, required"`
	BlindIndexKey   config.Secret `env:"BLIND_INDEX_KEY, required"`
	AuditChainKey   config.Secret `env:"AUDIT_CHAIN_KEY, required"`
	AuditSigningKey config.Secret `env:"AUDIT_SIGNING_KEY, required"`

	ClientsPeople config.List `env:"CLIENTS_PEOPLE, default=gateway"`
	ClientsAudit  config.List `env:"CLIENTS_AUDIT, default=gateway,strata-audit"`
	ClientsWrite  config.List `env:"CLIENTS_WRITE, default=basea-loader"`
	// ClientsAuditOnBehalf are the audit clients that act for a partner's
	// API key and must name it (x-partner-id); any other audit client is
	// bureau staff, who read every partner's entries.
	ClientsAuditOnBehalf config.List `env:"CLIENTS_AUDIT_ON_BEHALF, default=gateway"`

	HistoryWindow      time.Duration `env:"HISTORY_WINDOW, default=4380h"`
	CheckpointInterval time.Duration `env:"CHECKPOINT_INTERVAL, default=10s"`
	ChainInterval      time.Duration `env:"CHAIN_INTERVAL, default=250ms"`
	// VerifyBudget bounds the entries one verification call checks; the
	// next call continues from the last verified head.
	VerifyBudget int64 `env:"AUDIT_VERIFY_BUDGET, default=1000000"`
	// AuditRetention is how long audit entries are kept (default five
	// years; at least 183 days). Older ones are purged every
	// AuditPurgeInterval, in signed chain segments.
	AuditRetention     time.Duration `env:"AUDIT_RETENTION, default=43800h"`
	AuditPurgeInterval time.Duration `env:"AUDIT_PURGE_INTERVAL, default=1h"`
	MaxConns           int32         `env:"DB_MAX_CONNS, default=16"`
	SeedDemo           bool          `env:"SEED_DEMO, default=false"`
}

// Validate checks the configuration (key formats are checked at start).
func (c *Config) Validate() error {
	errs := config.Errors(&c.Service, &c.GRPC)
	if c.HistoryWindow < 24*time.Hour {
		errs = append(errs, errors.New("HISTORY_WINDOW must be at least 24h (the law asks for six months)"))
	}
	if c.AuditRetention < store.MinAuditRetention || c.AuditRetention < c.HistoryWindow {
		errs = append(errs, errors.New("AUDIT_RETENTION must be at least 4392h (183 days) and at least HISTORY_WINDOW"))
	}
	if c.AuditPurgeInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("AUDIT_PURGE_INTERVAL must be at least 10ms"))
	}
	if c.CheckpointInterval < 100*time.Millisecond || c.ChainInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("CHECKPOINT_INTERVAL ≥ 100ms and CHAIN_INTERVAL ≥ 10ms"))
	}
	return errors.Join(errs...)
}

// Load reads the configuration.
func Load(ctx context.Context, l config.Lookuper) (*Config, error) {
	c := Config{Service: config.Service{OpsAddr: "127.0.0.1:9101"}, GRPC: config.GRPC{GRPCAddr: "127.0.0.1:7101"}}
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return nil, err
	}
	return &c, nil
}

// MigrateConfig is what `base-a migrate` reads (same BASEA_ prefix): the
// owner's URL, used only by this command (a Kubernetes Job, make run),
// never by the long-running service.
type MigrateConfig struct {
	MigrateDatabaseURL config.Secret `env:"MIGRATE_DATABASE_URL, required"`
	// AppDBPassword, when set, also sets the application role's password
	// (needs an owner allowed to, e.g. in a fresh test cluster; normally
	// the database administrator sets it).
	AppDBPassword config.Secret `env:"APP_DB_PASSWORD"`
}

// RunMigrate applies Base A's migrations as the owner.
func RunMigrate(ctx context.Context, l config.Lookuper) error {
	var c MigrateConfig
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return store.Migrate(ctx, c.MigrateDatabaseURL.Reveal(), c.AppDBPassword.Reveal())
}

// Run listens on the configured addresses and serves until ctx ends.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	return platform.ListenAndServe(cfg.GRPCAddr, cfg.OpsAddr, func(glis, hlis net.Listener) error {
		return Serve(ctx, cfg, logger, glis, hlis)
	})
}

// Serve serves Base A on the given listeners until ctx ends.
func Serve(ctx context.Context, cfg *Config, logger *slog.Logger, glis, hlis net.Listener) error {
	defer func() { _ = glis.Close(); _ = hlis.Close() }()
	keys, err := crypto.ParseKeys(cfg.DataKeys.Reveal(), cfg.BlindIndexKey.Reveal())
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	akeys, err := audit.ParseKeys(cfg.AuditChainKey.Reveal(), cfg.AuditSigningKey.Reveal())
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	p, err := platform.Start(ctx, "base-a", "", &cfg.Service, logger)
	if err != nil {
		return err
	}
	defer p.Close(ctx)

	pool, err := postgres.Connect(ctx, cfg.DatabaseURL.Reveal(), postgres.Options{MaxConns: cfg.MaxConns, WaitFor: 30 * time.Second})
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool, keys, p.Breakers.New(breaker.Config{Name: "base-a->postgres", IsFailure: store.IsDBFailure}))
	if err := outbox.ObserveBacklog(p.Tel.Meter("base-a"), pool); err != nil {
		return err
	}
	if cfg.SeedDemo {
		if err := seedDemo(ctx, st); err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
	}
	p.Health.Add("postgres", st.Ping)

	chain := store.ChainOptions{Keys: akeys, CheckpointInterval: cfg.CheckpointInterval, Budget: cfg.VerifyBudget}
	logger.Info("audit log verifier key (public)", "verifier_key", akeys.VerifierKey())
	srv, err := newServer(cfg, p, st, chain)
	if err != nil {
		return err
	}
	jobs := &auditJobs{Store: st, Chain: chain, Config: cfg, Publisher: p.Publisher(0), Logger: logger}
	logger.Info("base-a serving", "grpc", glis.Addr().String(), "ops", hlis.Addr().String(), "mtls", true)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, glis, 10*time.Second) })
	g.Go(func() error { return p.ServeOps(gctx, hlis) })
	g.Go(func() error { p.Health.Drive(gctx, srv.Health, time.Second); return nil })
	g.Go(func() error { return jobs.RunChainer(gctx) })
	g.Go(func() error { return jobs.RunPurger(gctx) })
	g.Go(func() error { return jobs.RunRelay(gctx) })
	return g.Wait()
}

// newServer is Base A's gRPC server, behind the mTLS identity allow-list.
func newServer(cfg *Config, p *platform.Platform, st *store.Store, chain store.ChainOptions) (*grpcserver.Server, error) {
	access := grpcapi.Access{People: cfg.ClientsPeople, Audit: cfg.ClientsAudit, Write: cfg.ClientsWrite,
		AuditOnBehalf: cfg.ClientsAuditOnBehalf}
	metrics, err := grpcapi.NewMetrics(p.Tel.Meter("base-a"))
	if err != nil {
		return nil, err
	}
	srv, err := p.GRPCServer(cfg.GRPC, grpcserver.Options{
		UnaryInterceptors: []grpc.UnaryServerInterceptor{grpcapi.IdentityInterceptor(access), metrics.Interceptor()},
	})
	if err != nil {
		return nil, err
	}
	baseav1.RegisterPeopleServiceServer(srv, &grpcapi.PeopleServer{Store: st})
	auditSrv := &grpcapi.AuditServer{Store: st, Chain: chain, History: cfg.HistoryWindow, Metrics: metrics}
	baseav1.RegisterAuditServiceServer(srv, auditSrv)
	subjectv1.RegisterSubjectServiceServer(srv, &grpcapi.SubjectServer{Audit: auditSrv, Access: access})
	return srv, nil
}

// DemoCPF is the demo person's CPF (529.982.247-25).
const DemoCPF = "52998224725"

func seedDemo(ctx context.Context, st *store.Store) error {
	if err := st.UpsertPerson(ctx, DemoCPF, "Maria Aparecida da Silva", domain.Address{Street: "Rua das Flores", Number: "123",
		Complement: "apto 45", District: "Centro", City: "São Paulo", State: "SP", PostalCode: "01010000"}); err != nil {
		return err
	}
	for _, d := range []domain.Debt{
		{Creditor: "Banco Exemplo", ContractID: "CT-2024-0001", AmountCents: 1250000, Currency: "BRL", DueDate: "2026-12-10", Status: domain.DebtOpen},
		{Creditor: "Loja Eletro", ContractID: "CT-2023-0420", AmountCents: 89990, Currency: "BRL", DueDate: "2025-03-01", Status: domain.DebtPaid},
	} {
		if err := st.RecordDebt(ctx, DemoCPF, d); err != nil {
			return err
		}
	}
	return nil
}
