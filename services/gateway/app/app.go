// Package app wires the gateway: its database, the three bases, the API
// key middleware and limits, the built-in OAuth2 issuer, the public API
// and operations endpoints.
package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/health"
	"github.com/strata-bureau/strata/pkg/httpserver"
	"github.com/strata-bureau/strata/pkg/outbox"
	"github.com/strata-bureau/strata/pkg/pki"
	"github.com/strata-bureau/strata/pkg/postgres"
	"github.com/strata-bureau/strata/pkg/telemetry"
	"github.com/strata-bureau/strata/proto/eventtypes"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/api"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
	"github.com/strata-bureau/strata/services/gateway/internal/events"
	"github.com/strata-bureau/strata/services/gateway/internal/issuer"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
	"github.com/strata-bureau/strata/services/gateway/internal/witness"
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
	// ProcessingRecordsFile (JSON, the shape GET /v1/audit/processing-records
	// serves) describes purposes, data per base and retention; empty: the
	// built-in description. Recipients come from the partner registry.
	ProcessingRecordsFile string `env:"PROCESSING_RECORDS_FILE"`
	// AMQPProducers names the broker user that owns each event type the
	// gateway consumes (the witness: audit.checkpoint.signed from Base A).
	AMQPProducers string `env:"AMQP_PRODUCERS, default=audit.checkpoint.signed=base-a"`

	RatePerSec  float64       `env:"RATE_PER_SECOND, default=50"`
	Burst       int           `env:"BURST, default=100"`
	DailyQuota  int64         `env:"DAILY_QUOTA, default=100000"`
	KeyCacheTTL time.Duration `env:"KEY_CACHE_TTL, default=5s"`
	// TrustedProxies (CIDRs or addresses, comma-separated) may tell the
	// client's address in X-Forwarded-For; from anyone else it is ignored.
	TrustedProxies string `env:"TRUSTED_PROXIES"`
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
	// Base B and C answer in about a millisecond; a short per-attempt
	// deadline lets their breakers open within a second when a base hangs
	// (three timed-out attempts per replica), instead of after 3×2 s.
	BaseBTimeout time.Duration `env:"BASEB_TIMEOUT, default=250ms"`
	BaseCTimeout time.Duration `env:"BASEC_TIMEOUT, default=250ms"`
	Bulkhead     int           `env:"BULKHEAD, default=256"`
	// OTel is the standard OpenTelemetry environment (OTEL_*, no prefix),
	// read by Load.
	OTel telemetry.Env
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, errors.New("HTTP_ADDR must be host:port"))
	}
	if err := c.Service.Validate(); err != nil {
		errs = append(errs, err)
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
	if _, err := api.ParseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %w", err))
	}
	if c.AuthFailureBurst < 1 || c.AuthFailuresPerMinute <= 0 {
		errs = append(errs, errors.New("AUTH_FAILURE_BURST and AUTH_FAILURES_PER_MINUTE must be positive"))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 10<<20 {
		errs = append(errs, errors.New("MAX_BODY_BYTES must be 1 KiB to 10 MiB"))
	}
	return errors.Join(errs...)
}

// Load reads the configuration.
func Load(ctx context.Context, l config.Lookuper) (*Config, error) {
	c := Config{Service: config.Service{OpsAddr: "127.0.0.1:9080"}}
	if err := config.Load(ctx, Prefix, &c, l); err != nil {
		return nil, err
	}
	c.OTel = telemetry.LoadEnv(l)
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
	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	opsLis, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("listen %s: %w", cfg.OpsAddr, err)
	}
	return Serve(ctx, cfg, logger, lis, opsLis)
}

// Serve serves the public API on lis and the operator surface on opsLis
// until ctx ends.
func Serve(ctx context.Context, cfg *Config, logger *slog.Logger, lis, opsLis net.Listener) error {
	defer func() { _ = lis.Close(); _ = opsLis.Close() }()
	pepper, _ := base64.StdEncoding.DecodeString(cfg.KeyPepper.Reveal())
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "gateway", Env: cfg.OTel, OTLPEndpoint: cfg.OTLPEndpoint, OTLPInsecure: true})
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.WithoutCancel(ctx)) }()
	breakers, err := breaker.NewSet(tel.Meter("gateway"), logger)
	if err != nil {
		return err
	}

	pool, err := postgres.Connect(ctx, cfg.DatabaseURL.Reveal(), postgres.Options{MaxConns: 16, WaitFor: 30 * time.Second})
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	if err := outbox.ObserveBacklog(tel.Meter("gateway"), pool); err != nil {
		return err
	}

	certs := pki.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}
	tlsA, err := pki.ClientConfig(certs, cfg.BaseAServerName)
	if err != nil {
		return err
	}
	tlsB, err := pki.ClientConfig(certs, cfg.BaseBServerName)
	if err != nil {
		return err
	}
	tlsC, err := pki.ClientConfig(certs, cfg.BaseCServerName)
	if err != nil {
		return err
	}
	bo := backend.Options{Client: grpcclient.Options{Telemetry: tel}, Logger: logger, MaxInFlight: cfg.Bulkhead, PerPartner: cfg.PerPartner, Timeout: cfg.BackendTimeout,
		// Three consecutive failures open a replica's breaker; after 2s one
		// trial call is let through. Calls to an open breaker fail at once.
		Breaker: breaker.Config{ConsecutiveFailures: 3, OpenFor: 2 * time.Second}}
	boA := bo
	boA.Client.TLS = tlsA
	pa, err := backend.New("base-a", []string{cfg.BaseAAddr}, breakers, boA)
	if err != nil {
		return err
	}
	defer pa.Close()
	boB := bo
	boB.Timeout = cfg.BaseBTimeout
	boB.Client.TLS = tlsB
	pb, err := backend.New("base-b", cfg.BaseBAddrs, breakers, boB)
	if err != nil {
		return err
	}
	defer pb.Close()
	boC := bo
	boC.Timeout = cfg.BaseCTimeout
	boC.Client.TLS = tlsC
	pc, err := backend.New("base-c", cfg.BaseCAddrs, breakers, boC)
	if err != nil {
		return err
	}
	defer pc.Close()

	mq, err := amqp.Dial(ctx, amqp.Config{URL: cfg.AMQPURL.Reveal(), CAFile: cfg.AMQPCA, Name: "gateway", Logger: logger, Exchange: cfg.Exchange,
		TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider, Propagator: tel.Propagator})
	if err != nil {
		return err
	}
	defer func() { _ = mq.Close() }()
	pub := amqp.NewPublisher(mq, amqp.PublisherOptions{Breaker: breakers.New(breaker.Config{Name: "gateway->amqp", OpenFor: 2 * time.Second}), Propagator: tel.Propagator})
	emitter := events.New(pub, st, logger)

	mux := http.NewServeMux()
	hapi := api.NewAPI(mux)
	proxies, _ := api.ParseProxies(cfg.TrustedProxies) // checked by Validate
	failures := limits.NewFailures(cfg.AuthFailureBurst, cfg.AuthFailuresPerMinute)
	refusals, err := tel.Meter("gateway").Int64Counter("strata_gateway_limit_refusals_total",
		metric.WithDescription("Requests refused with 429 by a partner's rate limit or daily quota, by partner and reason."))
	if err != nil {
		return err
	}
	for _, reason := range []string{"rate_limited", "quota_exceeded"} {
		// Zero series (no partner yet) so alerts and dashboards have one.
		refusals.Add(ctx, 0, metric.WithAttributes(attribute.String("partner", ""), attribute.String("reason", reason)))
	}
	keyAuth := &api.KeyAuth{Store: st, Pepper: pepper, Limiter: limits.New(), Logger: logger, CacheTTL: cfg.KeyCacheTTL,
		Proxies: proxies, Failures: failures, Refusals: refusals}
	bindings := &api.Bindings{Store: st, TTL: cfg.KeyCacheTTL}
	var records *api.ProcessingRecords
	if cfg.ProcessingRecordsFile != "" {
		b, err := os.ReadFile(cfg.ProcessingRecordsFile)
		if err != nil {
			return fmt.Errorf("config: PROCESSING_RECORDS_FILE: %w", err)
		}
		if records, err = api.ParseProcessingRecords(b); err != nil {
			return fmt.Errorf("config: PROCESSING_RECORDS_FILE: %w", err)
		}
	}
	(&api.Handlers{Backends: api.Backends{A: pa, B: pb, C: pc}, Events: emitter, Logger: logger, Bindings: bindings,
		Records: records, Partners: recipients{st},
		Expensive: limits.NewConcurrency(max(1, cfg.ExpensiveCalls), 1)}).Register(hapi)
	(&api.Admin{Store: st, Logger: logger, Pepper: pepper, Keys: keyAuth, Bindings: bindings, RatePerSec: cfg.RatePerSec, Burst: cfg.Burst, DailyQuota: cfg.DailyQuota}).Register(hapi)
	if cfg.IssuerEnabled {
		keys, err := issuer.ParseKeys(cfg.IssuerKeys.Reveal())
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		is, err := issuer.New(issuer.Options{URL: cfg.PublicURL, Audience: cfg.IssuerAudience, TTL: cfg.TokenTTL, Keys: keys, Pepper: pepper, Clients: clients{st},
			Failures: failures, ClientIP: proxies.ClientIP, Logger: logger})
		if err != nil {
			return err
		}
		is.Register(mux)
	}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"live":true}` + "\n"))
	})
	// Partners see only ready or not; backends, replica addresses and
	// breakers are for operators.
	ready := func(r *http.Request) bool {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		return st.Ping(ctx) == nil
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok := ready(r)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]bool{"ready": ok})
	})
	mux.HandleFunc("/", api.NotFound)

	ops := http.NewServeMux()
	ops.HandleFunc("GET /livez", health.Livez)
	ops.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		dbOK := ready(r)
		body := map[string]any{"ready": dbOK, "database": dbOK, "broker": mq.Connected(),
			"backends": map[string]any{"base-a": pa.States(), "base-b": pb.States(), "base-c": pc.States()},
			"breakers": breakers.States()}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !dbOK {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	health.Operator(ops, tel.MetricsHandler())

	if cfg.BootstrapFile != "" {
		if err := bootstrap(ctx, st, pepper, cfg.BootstrapFile, cfg); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	// Outermost: the server span (continuing a partner's traceparent), the
	// request-duration metric and the access-log line see every answer,
	// including the edge's and the key check's refusals.
	observed := httpserver.Observe(api.Edge(cfg.MaxBodyBytes, keyAuth.Middleware(mux)), httpserver.ObserveOptions{
		Tracer: tel.Tracer("gateway/http"), Meter: tel.Meter("gateway/http"), Propagator: tel.Propagator, Logger: logger,
		Route: func(r *http.Request) string { _, pattern := mux.Handler(r); return pattern },
		Skip:  func(r *http.Request) bool { return r.URL.Path == "/livez" || r.URL.Path == "/readyz" },
	})
	srv := httpserver.New(observed)
	logger.Info("gateway serving", "http", lis.Addr().String(), "ops", opsLis.Addr().String(), "issuer", cfg.IssuerEnabled)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserver.Serve(gctx, srv, lis, 15*time.Second) })
	g.Go(func() error { return httpserver.Serve(gctx, httpserver.New(ops), opsLis, 5*time.Second) })
	for _, p := range []*backend.Pool{pa, pb, pc} {
		// 250 ms: a hung replica must leave the rotation well within the 1 s
		// the chaos suite allows for failing fast (see backend.WatchHealth).
		g.Go(func() error { p.WatchHealth(gctx, 250*time.Millisecond); return nil })
	}
	g.Go(func() error { emitter.Run(gctx); return nil })
	g.Go(func() error {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				keyAuth.FlushLastUsed(context.WithoutCancel(gctx))
				return nil
			case <-t.C:
				keyAuth.FlushLastUsed(gctx)
			}
		}
	})
	g.Go(func() error {
		// Daily quotas are shared by every replica through the database.
		t := time.NewTicker(cfg.QuotaSyncInterval)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-gctx.Done():
				sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 2*time.Second)
				_ = keyAuth.Limiter.Sync(sctx, st)
				cancel()
				return nil
			case <-t.C:
				err := keyAuth.Limiter.Sync(gctx, st)
				if err != nil && !failing && gctx.Err() == nil {
					logger.Warn("cannot share quota usage; counting locally until the database returns", "err", err)
				}
				failing = err != nil
			}
		}
	})
	if cfg.AuditVerifierKey != "" {
		v, err := note.NewVerifier(strings.TrimSpace(cfg.AuditVerifierKey))
		if err != nil {
			return fmt.Errorf("config: AUDIT_VERIFIER_KEY: %w", err)
		}
		alarms, err := tel.Meter("gateway").Int64Counter("strata_audit_witness_alarms_total",
			metric.WithDescription("Alarms the audit witness raised: a head that does not verify, a fork, an inconsistent head, or a consistency proof Base A refused for good (kind)."))
		if err != nil {
			return err
		}
		for _, kind := range []string{"signature", "fork", "inconsistent", "proof_refused"} {
			// Zero series, so the alert has one to read before the first alarm.
			alarms.Add(ctx, 0, metric.WithAttributes(attribute.String("kind", kind)))
		}
		w := &witness.Witness{Store: st, Verifier: v, File: cfg.WitnessFile, Logger: logger,
			OnAlarm: func(kind string) {
				alarms.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", kind)))
			},
			Prove: func(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
				var resp *baseav1.GetConsistencyResponse
				err := pa.Call(ctx, true, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
					resp, err = baseav1.NewAuditServiceClient(conn).GetConsistency(ctx, &baseav1.GetConsistencyRequest{OldSize: oldSize, NewSize: newSize})
					return err
				})
				if err != nil {
					return nil, err
				}
				p := make(tlog.TreeProof, len(resp.GetProof()))
				for i, h := range resp.GetProof() {
					copy(p[i][:], h)
				}
				return p, nil
			}}
		producers, err := amqp.ParseProducers(cfg.AMQPProducers)
		if err != nil {
			return fmt.Errorf("config: AMQP_PRODUCERS: %w", err)
		}
		onForeign := func(typ, user string) {
			logger.Error("AUDIT WITNESS: a signed head from a broker user that does not own audit.checkpoint.signed was dead-lettered", "type", typ, "user", user)
		}
		q := amqp.Queue{Name: "gateway.audit-witness", Bindings: []string{eventtypes.AuditCheckpointSigned}}
		g.Go(func() error {
			return mq.Consume(gctx, q, amqp.ConsumerOptions{Prefetch: 16, Tag: "gateway-witness", Propagator: tel.Propagator,
				Producers: producers, OnForeign: onForeign}, w.Handle)
		})
	}
	return g.Wait()
}

// recipients lists the partner institutions for the records of processing.
type recipients struct{ st *store.Store }

func (r recipients) Recipients(ctx context.Context) ([]api.RecordRecipient, error) {
	ps, err := r.st.ListPartners(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.RecordRecipient, 0, len(ps))
	for _, p := range ps {
		at := p.CreatedAt.UTC()
		out = append(out, api.RecordRecipient{ID: p.ID, Name: p.Name, Since: &at})
	}
	return out, nil
}
