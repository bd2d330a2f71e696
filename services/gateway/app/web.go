package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/checkpoint"
	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/health"
	"github.com/strata-bureau/strata/pkg/httpserver"
	"github.com/strata-bureau/strata/pkg/pki"
	"github.com/strata-bureau/strata/pkg/platform"
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

// backends are the pools of the three bases, each hop mutual TLS.
type backends struct{ A, B, C *backend.Pool }

func (b *backends) all() []*backend.Pool { return []*backend.Pool{b.A, b.B, b.C} }

// Close closes the pools opened so far.
func (b *backends) Close() {
	for _, p := range b.all() {
		if p != nil {
			p.Close()
		}
	}
}

func newBackends(cfg *Config, p *platform.Platform) (*backends, error) {
	bo := backend.Options{Client: grpcclient.Options{Telemetry: p.Tel}, Logger: p.Logger, MaxInFlight: cfg.Bulkhead, PerPartner: cfg.PerPartner, Timeout: cfg.BackendTimeout,
		// Three consecutive failures open a replica's breaker; after 2s one
		// trial call is let through. Calls to an open breaker fail at once.
		Breaker: breaker.Config{ConsecutiveFailures: 3, OpenFor: 2 * time.Second}}
	b := &backends{}
	for _, base := range []struct {
		pool       **backend.Pool
		name       string
		addrs      []string
		serverName string
		timeout    time.Duration
	}{
		{&b.A, "base-a", []string{cfg.BaseAAddr}, cfg.BaseAServerName, cfg.BackendTimeout},
		{&b.B, "base-b", cfg.BaseBAddrs, cfg.BaseBServerName, cfg.BaseBTimeout},
		{&b.C, "base-c", cfg.BaseCAddrs, cfg.BaseCServerName, cfg.BaseCTimeout},
	} {
		tlsCfg, err := pki.ClientConfig(pki.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}, base.serverName)
		if err != nil {
			b.Close()
			return nil, err
		}
		o := bo
		o.Timeout, o.Client.TLS = base.timeout, tlsCfg
		if *base.pool, err = backend.New(base.name, base.addrs, p.Breakers, o); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// web builds the gateway's two HTTP surfaces.
type web struct {
	cfg     *Config
	p       *platform.Platform
	st      *store.Store
	bases   *backends
	pepper  []byte
	emitter *events.Emitter
	keys    *api.KeyAuth
}

// partnerHandler is the partners' surface: the API (behind the edge checks
// and the API key), the built-in issuer, a bare /livez and /readyz.
func (w *web) partnerHandler() (http.Handler, error) {
	cfg, st := w.cfg, w.st
	mux := http.NewServeMux()
	hapi := api.NewAPI(mux)
	proxies := cfg.TrustedProxies
	failures := limits.NewFailures(cfg.AuthFailureBurst, cfg.AuthFailuresPerMinute)
	refusals, err := w.p.Tel.Meter("gateway").Int64Counter("strata_gateway_limit_refusals_total",
		metric.WithDescription("Requests refused with 429 by a partner's rate limit or daily quota, by partner and reason."))
	if err != nil {
		return nil, err
	}
	for _, reason := range []string{"rate_limited", "quota_exceeded"} {
		// Zero series (no partner yet) so alerts and dashboards have one.
		refusals.Add(context.Background(), 0, metric.WithAttributes(attribute.String("partner", ""), attribute.String("reason", reason)))
	}
	w.keys = &api.KeyAuth{Store: st, Pepper: w.pepper, Limiter: limits.New(), Logger: w.p.Logger, CacheTTL: cfg.KeyCacheTTL,
		Proxies: proxies, Failures: failures, Refusals: refusals}
	bindings := &api.Bindings{Store: st, TTL: cfg.KeyCacheTTL}
	records, err := processingRecords(cfg.ProcessingRecordsFile)
	if err != nil {
		return nil, err
	}
	(&api.Handlers{Backends: api.Backends{A: w.bases.A, B: w.bases.B, C: w.bases.C}, Events: w.emitter, Logger: w.p.Logger, Bindings: bindings,
		Records: records, Partners: recipients{st},
		Expensive: limits.NewConcurrency(max(1, cfg.ExpensiveCalls), 1)}).Register(hapi)
	(&api.Admin{Store: st, Logger: w.p.Logger, Pepper: w.pepper, Keys: w.keys, Bindings: bindings, RatePerSec: cfg.RatePerSec, Burst: cfg.Burst, DailyQuota: cfg.DailyQuota}).Register(hapi)
	if cfg.IssuerEnabled {
		keys, err := issuer.ParseKeys(cfg.IssuerKeys.Reveal())
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		is, err := issuer.New(issuer.Options{URL: cfg.PublicURL, Audience: cfg.IssuerAudience, TTL: cfg.TokenTTL, Keys: keys, Pepper: w.pepper, Clients: clients{st},
			Failures: failures, ClientIP: proxies.ClientIP})
		if err != nil {
			return nil, err
		}
		is.Register(mux)
	}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"live":true}` + "\n"))
	})
	// Partners see only ready or not; backends, replica addresses and
	// breakers are for operators.
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		writeReady(rw, w.ready(r), map[string]any{"ready": w.ready(r)})
	})
	mux.HandleFunc("/", api.NotFound)
	// Outermost: the server span (continuing a partner's traceparent), the
	// request-duration metric and the access-log line see every answer,
	// including the edge's and the key check's refusals.
	tel := w.p.Tel
	return httpserver.Observe(api.Edge(cfg.MaxBodyBytes, w.keys.Middleware(mux)), httpserver.ObserveOptions{
		Tracer: tel.Tracer("gateway/http"), Meter: tel.Meter("gateway/http"), Propagator: tel.Propagator, Logger: w.p.Logger,
		Route: func(r *http.Request) string { _, pattern := mux.Handler(r); return pattern },
		Skip:  func(r *http.Request) bool { return r.URL.Path == "/livez" || r.URL.Path == "/readyz" },
	}), nil
}

func (w *web) ready(r *http.Request) bool {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	return w.st.Ping(ctx) == nil
}

func writeReady(w http.ResponseWriter, ok bool, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// opsHandler is the operators' surface: the detailed /readyz (every
// backend replica and breaker), /metrics and pprof.
func (w *web) opsHandler() http.Handler {
	ops := http.NewServeMux()
	ops.HandleFunc("GET /livez", health.Livez)
	ops.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		dbOK := w.ready(r)
		writeReady(rw, dbOK, map[string]any{"ready": dbOK, "database": dbOK, "broker": w.p.MQ.Connected(),
			"backends": map[string]any{"base-a": w.bases.A.States(), "base-b": w.bases.B.States(), "base-c": w.bases.C.States()},
			"breakers": w.p.Breakers.States()})
	})
	health.Operator(ops, w.p.Tel.MetricsHandler())
	return ops
}

func processingRecords(file string) (*api.ProcessingRecords, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: PROCESSING_RECORDS_FILE: %w", err)
	}
	records, err := api.ParseProcessingRecords(b)
	if err != nil {
		return nil, fmt.Errorf("config: PROCESSING_RECORDS_FILE: %w", err)
	}
	return records, nil
}

// flushKeysLastUsed writes the keys' last_used_at every interval, and once
// more when ctx ends.
func flushKeysLastUsed(ctx context.Context, keys *api.KeyAuth, every time.Duration) error {
	err := platform.Every(ctx, every, keys.FlushLastUsed)
	keys.FlushLastUsed(context.WithoutCancel(ctx))
	return err
}

// newWitness returns, when AUDIT_VERIFIER_KEY is set, the consumer that
// makes the gateway a witness of Base A's signed audit heads (nil when
// not set).
func newWitness(cfg *Config, p *platform.Platform, st *store.Store, baseA *backend.Pool) (func(context.Context) error, error) {
	if cfg.AuditVerifierKey == "" {
		return nil, nil
	}
	v, err := checkpoint.NewVerifier(cfg.AuditVerifierKey)
	if err != nil {
		return nil, fmt.Errorf("config: AUDIT_VERIFIER_KEY: %w", err)
	}
	alarms, err := p.Tel.Meter("gateway").Int64Counter("strata_audit_witness_alarms_total",
		metric.WithDescription("Alarms the audit witness raised: a head that does not verify, a fork, an inconsistent head, or a consistency proof Base A refused for good (kind)."))
	if err != nil {
		return nil, err
	}
	for _, kind := range []string{"signature", "fork", "inconsistent", "proof_refused"} {
		// Zero series, so the alert has one to read before the first alarm.
		alarms.Add(context.Background(), 0, metric.WithAttributes(attribute.String("kind", kind)))
	}
	w := &witness.Witness{Store: st, Verifier: v, File: cfg.WitnessFile, Logger: p.Logger,
		OnAlarm: func(kind string) {
			alarms.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", kind)))
		},
		Prove: func(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
			var resp *baseav1.GetConsistencyResponse
			err := baseA.Call(ctx, true, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
				resp, err = baseav1.NewAuditServiceClient(conn).GetConsistency(ctx, &baseav1.GetConsistencyRequest{OldSize: oldSize, NewSize: newSize})
				return err
			})
			if err != nil {
				return nil, err
			}
			proof := make(tlog.TreeProof, len(resp.GetProof()))
			for i, h := range resp.GetProof() {
				copy(proof[i][:], h)
			}
			return proof, nil
		}}
	onForeign := func(typ, user string) {
		p.Logger.Error("AUDIT WITNESS: a signed head from a broker user that does not own audit.checkpoint.signed was dead-lettered", "type", typ, "user", user)
	}
	q := amqp.Queue{Name: "gateway.audit-witness", Bindings: []string{eventtypes.AuditCheckpointSigned}}
	return func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			w.Thin(gctx, cfg.WitnessDenseFor)
			return platform.Every(gctx, time.Hour, func(ctx context.Context) { w.Thin(ctx, cfg.WitnessDenseFor) })
		})
		g.Go(func() error {
			return p.MQ.Consume(gctx, q, amqp.ConsumerOptions{Prefetch: 16, Tag: "gateway-witness", Propagator: p.Tel.Propagator,
				Producers: cfg.AMQPProducers, OnForeign: onForeign}, w.Handle)
		})
		return g.Wait()
	}, nil
}

// recipients lists the partners as recipients in the records of
// processing.
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
