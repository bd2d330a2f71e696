// Package api is the gateway's public HTTP/JSON surface, declared with
// huma v2 so the handlers' Go types are the one source of the OpenAPI 3.1
// document at /openapi.json (rendered at /docs) and of RFC 9457 errors.
//
// One file per resource, each with its DTOs and the named converters from
// the bases' messages beside them: people.go (Base A grants and reads),
// profiles.go (Base B), activity.go (Base C), audit.go and subject.go
// (Base A's audit log, the data subject's report, the records of
// processing), admin.go (partners and keys). keys.go authenticates API
// keys, problem.go maps every error to a problem body, edge.go checks what
// is forwarded to a base.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
	"github.com/strata-bureau/strata/services/gateway/internal/events"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
)

// NewAPI declares the public API's document (served at /openapi.json,
// rendered at /docs) on mux. Operations are added by Handlers.Register and
// Admin.Register. It makes huma's own errors problems (NewHumaError).
func NewAPI(mux *http.ServeMux) huma.API {
	// RFC 9457 problems with stable types for huma's own errors. huma
	// keeps its error constructor in a package variable: set it once.
	humaErrors.Do(func() { huma.NewError = NewHumaError })
	hc := huma.DefaultConfig("Strata API", "1.0.0")
	hc.Info.Description = "Tiered access to credit data about CPFs. Every call carries an API key (X-Api-Key); " +
		"Base A reads also a grant (X-Strata-Grant), Base B an OAuth2 bearer token, Base C basic credentials."
	hc.OpenAPIPath, hc.DocsPath, hc.SchemasPath = "/openapi", "/docs", "/schemas"
	hc.CreateHooks = nil // no "$schema" links in bodies: the contract's fields only
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{"apiKey": {Type: "apiKey", In: "header", Name: "X-Api-Key"}}
	return humago.New(mux, hc)
}

// humaErrors guards the one write of huma.NewError.
var humaErrors sync.Once

// Backends are the three bases.
type Backends struct {
	A, B, C *backend.Pool
}

// Handlers serve the public API.
type Handlers struct {
	Backends Backends
	Events   *events.Emitter
	// Logger records every error the gateway masks (answered 500 or 503
	// without detail) with its cause and trace id.
	Logger *slog.Logger
	// Expensive bounds calls that cost a base far more than a read (audit
	// log reads and verification; exports): a small budget of their own,
	// one per partner at a time, so bursts of them never take the bulkhead or the
	// base's pool from everyone else. Nil: no budget beyond the bulkhead.
	Expensive *limits.Concurrency
	// Bindings gives the OAuth2 clients bound to the calling partner.
	Bindings *Bindings
	// Records (nil: DefaultProcessingRecords) and Partners (the
	// recipients) make the records of processing.
	Records  *ProcessingRecords
	Partners PartnerLister
}

// expensive takes a slot of the expensive-call budget for the caller.
func (h *Handlers) expensive(c Caller) (func(), error) {
	if h.Expensive == nil {
		return func() {}, nil
	}
	release, _, ok := h.Expensive.Acquire(c.PartnerID)
	if !ok {
		p := problem(http.StatusTooManyRequests, "expensive-call-budget", "this operation is expensive: one at a time per partner, a few at once in total; retry shortly")
		p.retryAfter = 5 * time.Second
		return nil, p
	}
	return release, nil
}

// Register declares every public operation on api.
func (h *Handlers) Register(api huma.API) {
	grant := operation("Base A", "create-grant", http.MethodPost, "/v1/grants", "Request a short-lived grant to read one CPF in Base A")
	grant.DefaultStatus = http.StatusCreated
	register(api, h.Logger, grant, h.createGrant)
	revoke := operation("Base A", "revoke-grant", http.MethodDelete, "/v1/grants/{grant_id}", "Revoke a grant")
	revoke.DefaultStatus = http.StatusNoContent
	register(api, h.Logger, revoke, h.revokeGrant)
	register(api, h.Logger, operation("Base A", "get-person", http.MethodGet, "/v1/people/{cpf}", "Read a person's granted fields (uses the grant once)"), h.getPerson)
	register(api, h.Logger, operation("Base A", "list-debts", http.MethodGet, "/v1/people/{cpf}/debts", "Read a person's debts (grant must cover debts)"), h.listDebts)
	register(api, h.Logger, operation("Base B", "get-profile", http.MethodGet, "/v1/profiles/{cpf}", "Read a profile (OAuth2 bearer with base-b:read)"), h.getProfile)
	register(api, h.Logger, operation("Base B", "get-score", http.MethodGet, "/v1/profiles/{cpf}/score", "Read a credit score with reason codes"), h.getScore)
	register(api, h.Logger, operation("Base C", "get-activity", http.MethodGet, "/v1/activity/{cpf}", "Read last query, last purchase and latest movements (basic auth)"), h.getActivity)
	register(api, h.Logger, operation("Base C", "list-movements", http.MethodGet, "/v1/activity/{cpf}/movements", "Page through movements"), h.listMovements)
	register(api, h.Logger, operation("Audit", "list-access-logs", http.MethodGet, "/v1/audit/access-logs", "Filter Base A's access log"), h.accessLogs)
	register(api, h.Logger, operation("Audit", "access-history", http.MethodGet, "/v1/audit/access-history/{cpf}", "Who accessed this CPF's Base A data in the last six months"), h.accessHistory)
	register(api, h.Logger, operation("Audit", "verify-audit-log", http.MethodPost, "/v1/audit/verify", "Verify the audit log's hash chain and signed checkpoints"), h.verify)
	register(api, h.Logger, operation("Audit", "subject-report", http.MethodGet, "/v1/audit/subject-report/{cpf}", "The data subject's report: what each base holds about a CPF and every access in the last six months"), h.subjectReport)
	register(api, h.Logger, operation("Audit", "processing-records", http.MethodGet, "/v1/audit/processing-records", "Records of processing (LGPD art. 37), generated from configuration"), h.processingRecords)
	register(api, h.Logger, operation("Audit", "audit-head", http.MethodGet, "/v1/audit/head", "The latest signed tree head of the verifiable audit log (public material)"), h.auditHead)
	register(api, h.Logger, operation("Audit", "audit-proof", http.MethodGet, "/v1/audit/entries/{id}/proof", "An inclusion proof of an audit entry in a signed tree head"), h.auditProof)
}

// operation is a public operation under tag: called with an API key, with
// a body of at most 16 KiB, answering the partner errors. Admin adds 409.
func operation(tag, id, method, path, summary string) huma.Operation {
	return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, Tags: []string{tag},
		Errors: []int{400, 401, 403, 404, 429, 503}, MaxBodyBytes: 16 << 10, Security: []map[string][]string{{"apiKey": {}}}}
}

// missingCredential is the 401 for a call without its base's credential.
func missingCredential(what string) error {
	return problem(http.StatusUnauthorized, "missing-backend-credential", "this call needs "+what)
}

// callerFor checks the key's scope and the CPF in one step.
func callerFor(ctx context.Context, scope apikey.Scope, rawCPF string) (Caller, string, error) {
	c, err := requireScope(ctx, scope)
	if err != nil {
		return c, "", err
	}
	person, err := parseCPF(rawCPF)
	return c, person, err
}

func hasScheme(h, scheme string) bool {
	return len(h) > len(scheme)+1 && strings.EqualFold(h[:len(scheme)], scheme) && h[len(scheme)] == ' '
}

// CPFPath is a request's {cpf}, with or without punctuation (parseCPF).
type CPFPath struct {
	CPF string `path:"cpf" maxLength:"20"`
}

func parseCPF(s string) (string, error) {
	c, err := cpf.Parse(s)
	if err != nil {
		return "", invalid("invalid CPF: " + err.Error())
	}
	return c.String(), nil
}

func ts(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime().UTC()
	return &v
}

// call runs fn on one of pool's replicas (idempotent: retried on another
// when one is unavailable) and maps its error to a problem (fromBackend).
func call[T any](ctx context.Context, h *Handlers, pool *backend.Pool, base string, idempotent bool,
	fn func(ctx context.Context, conn *grpc.ClientConn) (T, error)) (T, error) {
	var resp T
	err := pool.Call(ctx, idempotent, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = fn(ctx, conn)
		return err
	})
	return resp, h.fromBackend(ctx, err, base)
}

// converted is convert(resp), or err when the call failed.
func converted[T, O any](resp T, err error, convert func(T) O) (O, error) {
	if err != nil {
		var none O
		return none, err
	}
	return convert(resp), nil
}

// withCredential adds the base's credential, when set, to a call's
// metadata; the caller's origin (pkg/origin) is there already, set once by
// KeyAuth for every call to every base.
func withCredential(ctx context.Context, authorization string) context.Context {
	if authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	}
	return ctx
}
