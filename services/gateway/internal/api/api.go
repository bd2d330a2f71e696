// Package api is the gateway's public HTTP/JSON surface, declared with
// huma v2 so the handlers' Go types are the one source of the OpenAPI 3.1
// document at /openapi.json (rendered at /docs) and of RFC 9457 errors.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/cpf"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
	"github.com/strata-bureau/strata/services/gateway/internal/events"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
)

// Backends are the three bases.
type Backends struct {
	A, B, C *backend.Pool
}

// Handlers serve the public API.
type Handlers struct {
	Backends Backends
	Events   *events.Emitter
	// Logger records unexpected errors (answered 500) with their cause.
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
	errs := []int{400, 401, 403, 404, 429, 503}
	op := func(id, method, path, summary string, tags ...string) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, Tags: tags,
			Errors: errs, MaxBodyBytes: 16 << 10, Security: []map[string][]string{{"apiKey": {}}}}
	}
	grantOp := op("create-grant", http.MethodPost, "/v1/grants", "Request a short-lived grant to read one CPF in Base A", "Base A")
	grantOp.DefaultStatus = http.StatusCreated
	huma.Register(api, grantOp, h.createGrant)
	revoke := op("revoke-grant", http.MethodDelete, "/v1/grants/{grant_id}", "Revoke a grant", "Base A")
	revoke.DefaultStatus = http.StatusNoContent
	huma.Register(api, revoke, h.revokeGrant)
	huma.Register(api, op("get-person", http.MethodGet, "/v1/people/{cpf}", "Read a person's granted fields (uses the grant once)", "Base A"), h.getPerson)
	huma.Register(api, op("list-debts", http.MethodGet, "/v1/people/{cpf}/debts", "Read a person's debts (grant must cover debts)", "Base A"), h.listDebts)
	huma.Register(api, op("get-profile", http.MethodGet, "/v1/profiles/{cpf}", "Read a profile (OAuth2 bearer with base-b:read)", "Base B"), h.getProfile)
	huma.Register(api, op("get-score", http.MethodGet, "/v1/profiles/{cpf}/score", "Read a credit score with reason codes", "Base B"), h.getScore)
	huma.Register(api, op("get-activity", http.MethodGet, "/v1/activity/{cpf}", "Read last query, last purchase and latest movements (basic auth)", "Base C"), h.getActivity)
	huma.Register(api, op("list-movements", http.MethodGet, "/v1/activity/{cpf}/movements", "Page through movements", "Base C"), h.listMovements)
	huma.Register(api, op("list-access-logs", http.MethodGet, "/v1/audit/access-logs", "Filter Base A's access log", "Audit"), h.accessLogs)
	huma.Register(api, op("access-history", http.MethodGet, "/v1/audit/access-history/{cpf}", "Who accessed this CPF's Base A data in the last six months", "Audit"), h.accessHistory)
	huma.Register(api, op("verify-audit-log", http.MethodPost, "/v1/audit/verify", "Verify the audit log's hash chain and signed checkpoints", "Audit"), h.verify)
	huma.Register(api, op("subject-report", http.MethodGet, "/v1/audit/subject-report/{cpf}", "The data subject's report: what each base holds about a CPF and every access in the last six months", "Audit"), h.subjectReport)
	huma.Register(api, op("processing-records", http.MethodGet, "/v1/audit/processing-records", "Records of processing (LGPD art. 37), generated from configuration", "Audit"), h.processingRecords)
	huma.Register(api, op("audit-head", http.MethodGet, "/v1/audit/head", "The latest signed tree head of the verifiable audit log (public material)", "Audit"), h.auditHead)
	huma.Register(api, op("audit-proof", http.MethodGet, "/v1/audit/entries/{id}/proof", "An inclusion proof of an audit entry in a signed tree head", "Audit"), h.auditProof)
}

// missingCredential is the 401 for a call without its base's credential.
func missingCredential(what string) error {
	return problem(http.StatusUnauthorized, "missing-backend-credential", "this call needs "+what)
}

// callerFor checks the key's scope and the CPF in one step.
func callerFor(ctx context.Context, scope, rawCPF string) (Caller, string, error) {
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

// ---- Base A ----

var purposes = map[string]baseav1.Purpose{"credit_analysis": baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS,
	"fraud_prevention": baseav1.Purpose_PURPOSE_FRAUD_PREVENTION, "collection": baseav1.Purpose_PURPOSE_COLLECTION,
	"consumer_request": baseav1.Purpose_PURPOSE_CONSUMER_REQUEST}

var fieldsByName = map[string]baseav1.Field{"name": baseav1.Field_FIELD_NAME, "address": baseav1.Field_FIELD_ADDRESS, "debts": baseav1.Field_FIELD_DEBTS}

func purposeName(p baseav1.Purpose) string {
	for k, v := range purposes {
		if v == p {
			return k
		}
	}
	return ""
}

func fieldNames(fs []baseav1.Field) []string {
	out := []string{}
	for _, f := range fs {
		for k, v := range fieldsByName {
			if v == f {
				out = append(out, k)
			}
		}
	}
	return out
}

// GrantRequest is the body of POST /v1/grants.
type GrantRequest struct {
	Body struct {
		CPF        string   `json:"cpf" maxLength:"20" doc:"CPF, with or without punctuation"`
		Purpose    string   `json:"purpose" enum:"credit_analysis,fraud_prevention,collection,consumer_request"`
		Reason     string   `json:"reason" minLength:"10" maxLength:"500"`
		Fields     []string `json:"fields" minItems:"1" maxItems:"3" uniqueItems:"true" enum:"name,address,debts"`
		TTLSeconds int32    `json:"ttl_seconds,omitempty" minimum:"1" maximum:"300" doc:"lifetime, default 120, at most 300"`
		MaxUses    int32    `json:"max_uses,omitempty" minimum:"1" maximum:"10" doc:"number of reads, default 1"`
	}
}

// GrantResponse is a new grant; the token is shown once.
type GrantResponse struct {
	Body struct {
		GrantID   string    `json:"grant_id"`
		Token     string    `json:"token" doc:"send as X-Strata-Grant; shown once"`
		CPF       string    `json:"cpf"`
		Fields    []string  `json:"fields"`
		Purpose   string    `json:"purpose"`
		ExpiresAt time.Time `json:"expires_at"`
		MaxUses   int32     `json:"max_uses"`
	}
}

func accessCtx(c Caller) *baseav1.AccessContext {
	return &baseav1.AccessContext{PartnerId: c.PartnerID, ClientIp: c.ClientIP}
}

func (h *Handlers) createGrant(ctx context.Context, in *GrantRequest) (*GrantResponse, error) {
	c, person, err := callerFor(ctx, "base-a:grant", in.Body.CPF)
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", in.Body.Reason, 500); err != nil {
		return nil, err
	}
	req := &baseav1.RequestGrantRequest{Context: accessCtx(c), Cpf: person, Purpose: purposes[in.Body.Purpose], Reason: in.Body.Reason,
		TtlSeconds: in.Body.TTLSeconds, MaxUses: in.Body.MaxUses}
	for _, f := range in.Body.Fields {
		req.Fields = append(req.Fields, fieldsByName[f])
	}
	var resp *baseav1.RequestGrantResponse
	err = h.Backends.A.Call(ctx, false, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = baseav1.NewPeopleServiceClient(conn).RequestGrant(outgoing(ctx, c, ""), req)
		return err
	})
	if err != nil {
		return nil, h.fromBackend(ctx, err, "base A")
	}
	out := &GrantResponse{}
	out.Body.GrantID, out.Body.Token, out.Body.CPF = resp.GetGrantId(), resp.GetToken(), resp.GetCpf()
	out.Body.Fields, out.Body.Purpose = fieldNames(resp.GetFields()), purposeName(resp.GetPurpose())
	out.Body.ExpiresAt, out.Body.MaxUses = resp.GetExpiresAt().AsTime().UTC(), resp.GetMaxUses()
	return out, nil
}

// RevokeRequest names a grant.
type RevokeRequest struct {
	GrantID string `path:"grant_id" maxLength:"64"`
}

func (h *Handlers) revokeGrant(ctx context.Context, in *RevokeRequest) (*struct{}, error) {
	c, err := requireScope(ctx, "base-a:grant")
	if err != nil {
		return nil, err
	}
	if err := checkToken("grant_id", in.GrantID, 64); err != nil {
		return nil, err
	}
	err = h.Backends.A.Call(ctx, false, func(ctx context.Context, conn *grpc.ClientConn) error {
		_, err := baseav1.NewPeopleServiceClient(conn).RevokeGrant(outgoing(ctx, c, ""), &baseav1.RevokeGrantRequest{Context: accessCtx(c), GrantId: in.GrantID})
		return err
	})
	return nil, h.fromBackend(ctx, err, "base A")
}

// PersonRequest reads a person with a grant.
type PersonRequest struct {
	CPF   string `path:"cpf" maxLength:"20"`
	Grant string `header:"X-Strata-Grant" maxLength:"128" doc:"the grant token (required)"`
}

// Address is a postal address.
type Address struct {
	Street     string `json:"street"`
	Number     string `json:"number"`
	Complement string `json:"complement"`
	District   string `json:"district"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postal_code"`
}

// Debt is one debt.
type Debt struct {
	Creditor    string `json:"creditor"`
	ContractID  string `json:"contract_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	DueDate     string `json:"due_date"`
	Status      string `json:"status" enum:"open,paid,renegotiated"`
}

// PersonResponse holds only the granted fields.
type PersonResponse struct {
	AuditEntry string `header:"Strata-Audit-Entry" doc:"the id of this read's audit entry: its receipt (GET /v1/audit/entries/{id}/proof)"`
	Body       struct {
		CPF     string   `json:"cpf"`
		Name    string   `json:"name,omitempty"`
		Address *Address `json:"address,omitempty"`
		Debts   []Debt   `json:"debts,omitempty"`
	}
}

var debtStatus = map[baseav1.DebtStatus]string{baseav1.DebtStatus_DEBT_STATUS_OPEN: "open", baseav1.DebtStatus_DEBT_STATUS_PAID: "paid",
	baseav1.DebtStatus_DEBT_STATUS_RENEGOTIATED: "renegotiated"}

func debts(ds []*baseav1.Debt) []Debt {
	out := []Debt{}
	for _, d := range ds {
		out = append(out, Debt{Creditor: d.GetCreditor(), ContractID: d.GetContractId(), AmountCents: d.GetAmountCents(),
			Currency: d.GetCurrency(), DueDate: d.GetDueDate(), Status: debtStatus[d.GetStatus()]})
	}
	return out
}

func (h *Handlers) getPerson(ctx context.Context, in *PersonRequest) (*PersonResponse, error) {
	c, person, err := callerFor(ctx, "base-a:read", in.CPF)
	if err != nil {
		return nil, err
	}
	if in.Grant == "" {
		return nil, missingCredential("a grant token in X-Strata-Grant")
	}
	var resp *baseav1.GetPersonResponse
	var md metadata.MD
	// Not retried: every attempt uses the grant and is audited.
	err = h.Backends.A.Call(ctx, false, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = baseav1.NewPeopleServiceClient(conn).GetPerson(outgoing(ctx, c, ""), &baseav1.GetPersonRequest{Context: accessCtx(c), Cpf: person, GrantToken: in.Grant}, grpc.Header(&md))
		return err
	})
	if err != nil {
		return nil, h.fromBackend(ctx, err, "base A")
	}
	h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-a")
	p := resp.GetPerson()
	out := &PersonResponse{AuditEntry: receipt(md)}
	out.Body.CPF, out.Body.Name = p.GetCpf(), p.GetName()
	if a := p.GetAddress(); a != nil {
		out.Body.Address = &Address{Street: a.GetStreet(), Number: a.GetNumber(), Complement: a.GetComplement(), District: a.GetDistrict(),
			City: a.GetCity(), State: a.GetState(), PostalCode: a.GetPostalCode()}
	}
	for _, f := range p.GetFields() {
		if f == baseav1.Field_FIELD_DEBTS {
			out.Body.Debts = debts(p.GetDebts())
		}
	}
	return out, nil
}

// receipt is the audit entry id Base A answered a read with.
func receipt(md metadata.MD) string {
	if v := md.Get("strata-audit-entry"); len(v) == 1 && len(v[0]) <= 64 {
		return v[0]
	}
	return ""
}

// DebtsResponse lists debts.
type DebtsResponse struct {
	AuditEntry string `header:"Strata-Audit-Entry" doc:"the id of this read's audit entry: its receipt (GET /v1/audit/entries/{id}/proof)"`
	Body       struct {
		CPF   string `json:"cpf"`
		Debts []Debt `json:"debts"`
	}
}

func (h *Handlers) listDebts(ctx context.Context, in *PersonRequest) (*DebtsResponse, error) {
	c, person, err := callerFor(ctx, "base-a:read", in.CPF)
	if err != nil {
		return nil, err
	}
	if in.Grant == "" {
		return nil, missingCredential("a grant token in X-Strata-Grant")
	}
	var resp *baseav1.ListDebtsResponse
	var md metadata.MD
	err = h.Backends.A.Call(ctx, false, func(ctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = baseav1.NewPeopleServiceClient(conn).ListDebts(outgoing(ctx, c, ""), &baseav1.ListDebtsRequest{Context: accessCtx(c), Cpf: person, GrantToken: in.Grant}, grpc.Header(&md))
		return err
	})
	if err != nil {
		return nil, h.fromBackend(ctx, err, "base A")
	}
	h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-a")
	out := &DebtsResponse{AuditEntry: receipt(md)}
	out.Body.CPF, out.Body.Debts = resp.GetCpf(), debts(resp.GetDebts())
	return out, nil
}

// ---- Base B ----

// BearerRequest carries the partner's OAuth2 access token for Base B.
type BearerRequest struct {
	CPF           string `path:"cpf" maxLength:"20"`
	Authorization string `header:"Authorization" maxLength:"8192" doc:"Bearer <access token with base-b:read> (required)"`
}

// outgoing adds the base's credential, when set, to a call's metadata; the
// caller's origin (pkg/origin) is there already, set once by KeyAuth for
// every call to every base.
func outgoing(ctx context.Context, _ Caller, authorization string) context.Context {
	if authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	}
	return ctx
}

// toBaseB adds, besides the token, the OAuth2 client ids bound to the
// calling partner: Base B honours a token only if its client is one of them.
func (h *Handlers) toBaseB(ctx context.Context, c Caller) (context.Context, error) {
	clients, err := h.Bindings.Clients(ctx, c.PartnerID)
	if err != nil {
		return nil, unavailable("the key store")
	}
	return metadata.AppendToOutgoingContext(ctx, "x-partner-oauth-clients", clients), nil
}

// Asset is an asset.
type Asset struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
	ValueCents  int64  `json:"value_cents"`
	Currency    string `json:"currency"`
}

// IncomeSource is an income source.
type IncomeSource struct {
	Kind               string `json:"kind"`
	MonthlyAmountCents int64  `json:"monthly_amount_cents"`
	Currency           string `json:"currency"`
	Since              string `json:"since"`
}

// ProfileResponse is a Base B profile.
type ProfileResponse struct {
	Body struct {
		CPF           string         `json:"cpf"`
		Age           int32          `json:"age"`
		Address       Address        `json:"address"`
		Assets        []Asset        `json:"assets"`
		IncomeSources []IncomeSource `json:"income_sources"`
		UpdatedAt     *time.Time     `json:"updated_at"`
	}
}

var assetKinds = map[basebv1.AssetKind]string{basebv1.AssetKind_ASSET_KIND_REAL_ESTATE: "real_estate", basebv1.AssetKind_ASSET_KIND_VEHICLE: "vehicle",
	basebv1.AssetKind_ASSET_KIND_INVESTMENT: "investment", basebv1.AssetKind_ASSET_KIND_OTHER: "other"}
var incomeKinds = map[basebv1.IncomeKind]string{basebv1.IncomeKind_INCOME_KIND_SALARY: "salary", basebv1.IncomeKind_INCOME_KIND_SELF_EMPLOYED: "self_employed",
	basebv1.IncomeKind_INCOME_KIND_PENSION: "pension", basebv1.IncomeKind_INCOME_KIND_RENTAL: "rental", basebv1.IncomeKind_INCOME_KIND_INVESTMENT: "investment",
	basebv1.IncomeKind_INCOME_KIND_OTHER: "other"}

func (h *Handlers) getProfile(ctx context.Context, in *BearerRequest) (*ProfileResponse, error) {
	c, person, err := callerFor(ctx, "base-b:read", in.CPF)
	if err != nil {
		return nil, err
	}
	if !hasScheme(in.Authorization, "Bearer") {
		return nil, missingCredential("an OAuth2 access token: Authorization: Bearer <token>")
	}
	var resp *basebv1.GetProfileResponse
	bound, err := h.toBaseB(ctx, c)
	if err != nil {
		return nil, err
	}
	err = h.Backends.B.Call(bound, true, func(bctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = basebv1.NewProfileServiceClient(conn).GetProfile(outgoing(bctx, c, in.Authorization), &basebv1.GetProfileRequest{Cpf: person, ClientIp: c.ClientIP})
		return err
	})
	if err != nil {
		return nil, h.fromBackend(ctx, err, "base B")
	}
	h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-b")
	p := resp.GetProfile()
	out := &ProfileResponse{}
	a := p.GetAddress()
	out.Body.CPF, out.Body.Age, out.Body.UpdatedAt = p.GetCpf(), p.GetAge(), ts(p.GetUpdatedAt())
	out.Body.Address = Address{Street: a.GetStreet(), Number: a.GetNumber(), Complement: a.GetComplement(), District: a.GetDistrict(),
		City: a.GetCity(), State: a.GetState(), PostalCode: a.GetPostalCode()}
	out.Body.Assets, out.Body.IncomeSources = []Asset{}, []IncomeSource{}
	for _, x := range p.GetAssets() {
		out.Body.Assets = append(out.Body.Assets, Asset{Kind: assetKinds[x.GetKind()], Description: x.GetDescription(), ValueCents: x.GetValueCents(), Currency: x.GetCurrency()})
	}
	for _, x := range p.GetIncomeSources() {
		out.Body.IncomeSources = append(out.Body.IncomeSources, IncomeSource{Kind: incomeKinds[x.GetKind()], MonthlyAmountCents: x.GetMonthlyAmountCents(), Currency: x.GetCurrency(), Since: x.GetSince()})
	}
	return out, nil
}

// Reason is a score reason code.
type Reason struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// ScoreResponse is a credit score.
type ScoreResponse struct {
	Body struct {
		CPF          string   `json:"cpf"`
		Score        int32    `json:"score" minimum:"0" maximum:"1000"`
		Band         string   `json:"band" enum:"very_low,low,medium,high,very_high"`
		Reasons      []Reason `json:"reasons"`
		ModelVersion string   `json:"model_version"`
	}
}

var bands = map[basebv1.Band]string{basebv1.Band_BAND_VERY_LOW: "very_low", basebv1.Band_BAND_LOW: "low", basebv1.Band_BAND_MEDIUM: "medium",
	basebv1.Band_BAND_HIGH: "high", basebv1.Band_BAND_VERY_HIGH: "very_high"}

func (h *Handlers) getScore(ctx context.Context, in *BearerRequest) (*ScoreResponse, error) {
	c, person, err := callerFor(ctx, "base-b:read", in.CPF)
	if err != nil {
		return nil, err
	}
	if !hasScheme(in.Authorization, "Bearer") {
		return nil, missingCredential("an OAuth2 access token: Authorization: Bearer <token>")
	}
	var resp *basebv1.GetScoreResponse
	bound, err := h.toBaseB(ctx, c)
	if err != nil {
		return nil, err
	}
	err = h.Backends.B.Call(bound, true, func(bctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = basebv1.NewProfileServiceClient(conn).GetScore(outgoing(bctx, c, in.Authorization), &basebv1.GetScoreRequest{Cpf: person, ClientIp: c.ClientIP})
		return err
	})
	if err != nil {
		return nil, h.fromBackend(ctx, err, "base B")
	}
	h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-b")
	s := resp.GetScore()
	out := &ScoreResponse{}
	out.Body.CPF, out.Body.Score, out.Body.Band, out.Body.ModelVersion = s.GetCpf(), s.GetScore(), bands[s.GetBand()], s.GetModelVersion()
	out.Body.Reasons = []Reason{}
	for _, r := range s.GetReasons() {
		out.Body.Reasons = append(out.Body.Reasons, Reason{Code: r.GetCode(), Description: r.GetDescription()})
	}
	return out, nil
}

// ---- Base C ----

// BasicRequest carries Base C's basic credentials.
type BasicRequest struct {
	CPF           string `path:"cpf" maxLength:"20"`
	Authorization string `header:"Authorization" maxLength:"1024" doc:"Basic <base64(user:password)> of a Base C account (required)"`
}

// LastQuery is the last bureau query of a CPF.
type LastQuery struct {
	QueriedAt *time.Time `json:"queried_at"`
	PartnerID string     `json:"partner_id"`
	ClientIP  string     `json:"client_ip"`
	Base      string     `json:"base"`
}

// Purchase is a card purchase.
type Purchase struct {
	AmountCents  int64      `json:"amount_cents"`
	Currency     string     `json:"currency"`
	Merchant     string     `json:"merchant"`
	Installments int32      `json:"installments"`
	OccurredAt   *time.Time `json:"occurred_at"`
}

// Movement is a financial movement.
type Movement struct {
	AmountCents int64      `json:"amount_cents"`
	Currency    string     `json:"currency"`
	Direction   string     `json:"direction" enum:"credit,debit"`
	Description string     `json:"description"`
	OccurredAt  *time.Time `json:"occurred_at"`
}

// ActivityResponse is a CPF's activity.
type ActivityResponse struct {
	Body struct {
		CPF          string     `json:"cpf"`
		LastQuery    *LastQuery `json:"last_query"`
		LastPurchase *Purchase  `json:"last_purchase"`
		Movements    []Movement `json:"movements"`
		Stale        bool       `json:"stale" doc:"true when served from cache while Base C's store is down"`
	}
}

func movements(ms []*basecv1.Movement) []Movement {
	out := []Movement{}
	for _, m := range ms {
		dir := "credit"
		if m.GetDirection() == basecv1.Direction_DIRECTION_DEBIT {
			dir = "debit"
		}
		out = append(out, Movement{AmountCents: m.GetAmountCents(), Currency: m.GetCurrency(), Direction: dir, Description: m.GetDescription(), OccurredAt: ts(m.GetOccurredAt())})
	}
	return out
}

func (h *Handlers) getActivity(ctx context.Context, in *BasicRequest) (*ActivityResponse, error) {
	c, person, err := callerFor(ctx, "base-c:read", in.CPF)
	if err != nil {
		return nil, err
	}
	if !hasScheme(in.Authorization, "Basic") {
		return nil, missingCredential("Base C basic credentials: Authorization: Basic <base64(user:password)>")
	}
	var resp *basecv1.GetActivityResponse
	err = h.Backends.C.Call(ctx, true, func(cctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = basecv1.NewActivityServiceClient(conn).GetActivity(outgoing(cctx, c, in.Authorization), &basecv1.GetActivityRequest{Cpf: person})
		return err
	})
	if err != nil {
		return nil, h.fromBackend(ctx, err, "base C")
	}
	h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-c")
	a := resp.GetActivity()
	out := &ActivityResponse{}
	out.Body.CPF, out.Body.Stale, out.Body.Movements = a.GetCpf(), resp.GetStale(), movements(a.GetMovements())
	if q := a.GetLastQuery(); q != nil {
		out.Body.LastQuery = &LastQuery{QueriedAt: ts(q.GetQueriedAt()), PartnerID: q.GetPartnerId(), ClientIP: q.GetClientIp(), Base: q.GetBase()}
	}
	if p := a.GetLastPurchase(); p != nil {
		out.Body.LastPurchase = &Purchase{AmountCents: p.GetAmountCents(), Currency: p.GetCurrency(), Merchant: p.GetMerchant(), Installments: p.GetInstallments(), OccurredAt: ts(p.GetOccurredAt())}
	}
	return out, nil
}

// MovementsRequest pages through movements.
type MovementsRequest struct {
	BasicRequest
	From      time.Time `query:"from" doc:"RFC 3339, inclusive"`
	To        time.Time `query:"to" doc:"RFC 3339, exclusive"`
	Limit     int32     `query:"limit" minimum:"1" maximum:"100" default:"20"`
	PageToken string    `query:"page_token" maxLength:"512"`
}

// MovementsResponse is a page of movements.
type MovementsResponse struct {
	Body struct {
		Movements     []Movement `json:"movements"`
		NextPageToken string     `json:"next_page_token,omitempty"`
	}
}

func (h *Handlers) listMovements(ctx context.Context, in *MovementsRequest) (*MovementsResponse, error) {
	c, person, err := callerFor(ctx, "base-c:read", in.CPF)
	if err != nil {
		return nil, err
	}
	if !hasScheme(in.Authorization, "Basic") {
		return nil, missingCredential("Base C basic credentials: Authorization: Basic <base64(user:password)>")
	}
	if err := checkToken("page_token", in.PageToken, 512); err != nil {
		return nil, err
	}
	req := &basecv1.ListMovementsRequest{Cpf: person, Limit: in.Limit, PageToken: in.PageToken}
	if !in.From.IsZero() {
		req.From = timestamppb.New(in.From)
	}
	if !in.To.IsZero() {
		req.To = timestamppb.New(in.To)
	}
	var resp *basecv1.ListMovementsResponse
	err = h.Backends.C.Call(ctx, true, func(cctx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = basecv1.NewActivityServiceClient(conn).ListMovements(outgoing(cctx, c, in.Authorization), req)
		return err
	})
	if err != nil {
		return nil, h.fromBackend(ctx, err, "base C")
	}
	out := &MovementsResponse{}
	out.Body.Movements, out.Body.NextPageToken = movements(resp.GetMovements()), resp.GetNextPageToken()
	return out, nil
}
