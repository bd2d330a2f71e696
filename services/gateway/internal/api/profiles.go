package api

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
)

// Base B: GET /v1/profiles/{cpf} and GET /v1/profiles/{cpf}/score, with
// the partner's OAuth2 access token.

// BearerRequest carries the partner's OAuth2 access token for Base B.
type BearerRequest struct {
	CPFPath
	Authorization string `header:"Authorization" maxLength:"8192" doc:"Bearer <access token with base-b:read> (required)"`
}

// Asset is an asset.
type Asset struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
	ValueCents  int64  `json:"value_cents"`
	Currency    string `json:"currency"`
}

var assetKinds = map[basebv1.AssetKind]string{basebv1.AssetKind_ASSET_KIND_REAL_ESTATE: "real_estate", basebv1.AssetKind_ASSET_KIND_VEHICLE: "vehicle",
	basebv1.AssetKind_ASSET_KIND_INVESTMENT: "investment", basebv1.AssetKind_ASSET_KIND_OTHER: "other"}

// asset converts one asset.
func asset(x *basebv1.Asset) Asset {
	return Asset{Kind: assetKinds[x.GetKind()], Description: x.GetDescription(), ValueCents: x.GetValueCents(), Currency: x.GetCurrency()}
}

// IncomeSource is an income source.
type IncomeSource struct {
	Kind               string `json:"kind"`
	MonthlyAmountCents int64  `json:"monthly_amount_cents"`
	Currency           string `json:"currency"`
	Since              string `json:"since"`
}

var incomeKinds = map[basebv1.IncomeKind]string{basebv1.IncomeKind_INCOME_KIND_SALARY: "salary", basebv1.IncomeKind_INCOME_KIND_SELF_EMPLOYED: "self_employed",
	basebv1.IncomeKind_INCOME_KIND_PENSION: "pension", basebv1.IncomeKind_INCOME_KIND_RENTAL: "rental", basebv1.IncomeKind_INCOME_KIND_INVESTMENT: "investment",
	basebv1.IncomeKind_INCOME_KIND_OTHER: "other"}

// incomeSource converts one income source.
func incomeSource(x *basebv1.IncomeSource) IncomeSource {
	return IncomeSource{Kind: incomeKinds[x.GetKind()], MonthlyAmountCents: x.GetMonthlyAmountCents(), Currency: x.GetCurrency(), Since: x.GetSince()}
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
		Stale         bool           `json:"stale" doc:"true when served from Base B's cache while its store is down (it may miss a change made during the outage)"`
	}
}

// profileResponse converts a profile read (lists never nil).
func profileResponse(resp *basebv1.GetProfileResponse) *ProfileResponse {
	p := resp.GetProfile()
	out := &ProfileResponse{}
	out.Body.CPF, out.Body.Age, out.Body.UpdatedAt, out.Body.Stale = p.GetCpf(), p.GetAge(), ts(p.GetUpdatedAt()), resp.GetStale()
	out.Body.Address = address(p.GetAddress())
	out.Body.Assets, out.Body.IncomeSources = []Asset{}, []IncomeSource{}
	for _, x := range p.GetAssets() {
		out.Body.Assets = append(out.Body.Assets, asset(x))
	}
	for _, x := range p.GetIncomeSources() {
		out.Body.IncomeSources = append(out.Body.IncomeSources, incomeSource(x))
	}
	return out
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
		Stale        bool     `json:"stale" doc:"true when scored from Base B's cached profile while its store is down"`
	}
}

var bands = map[basebv1.Band]string{basebv1.Band_BAND_VERY_LOW: "very_low", basebv1.Band_BAND_LOW: "low", basebv1.Band_BAND_MEDIUM: "medium",
	basebv1.Band_BAND_HIGH: "high", basebv1.Band_BAND_VERY_HIGH: "very_high"}

// scoreResponse converts a score read (reasons never nil).
func scoreResponse(resp *basebv1.GetScoreResponse) *ScoreResponse {
	s := resp.GetScore()
	out := &ScoreResponse{}
	out.Body.Stale = resp.GetStale()
	out.Body.CPF, out.Body.Score, out.Body.Band, out.Body.ModelVersion = s.GetCpf(), s.GetScore(), bands[s.GetBand()], s.GetModelVersion()
	out.Body.Reasons = []Reason{}
	for _, r := range s.GetReasons() {
		out.Body.Reasons = append(out.Body.Reasons, Reason{Code: r.GetCode(), Description: r.GetDescription()})
	}
	return out
}

// toBaseB checks a Base B read's scope, CPF and bearer token, and adds to
// the call, besides the token, the OAuth2 client ids bound to the calling
// partner: Base B honours a token only if its client is one of them.
func (h *Handlers) toBaseB(ctx context.Context, in *BearerRequest) (context.Context, Caller, string, error) {
	c, person, err := callerFor(ctx, apikey.ScopeBaseBRead, in.CPF)
	if err != nil {
		return nil, c, "", err
	}
	if !hasScheme(in.Authorization, "Bearer") {
		return nil, c, "", missingCredential("an OAuth2 access token: Authorization: Bearer <token>")
	}
	clients, err := h.Bindings.Clients(ctx, c.PartnerID)
	if err != nil {
		return nil, c, "", h.masked(ctx, unavailable("the key store"), err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "x-partner-oauth-clients", clients)
	return withCredential(ctx, in.Authorization), c, person, nil
}

// readB runs one Base B read (retried on another replica: reads are
// idempotent), records the query and converts the answer.
func readB[T, O any](h *Handlers, ctx context.Context, in *BearerRequest, convert func(T) O,
	read func(ctx context.Context, b basebv1.ProfileServiceClient, cpf, clientIP string) (T, error)) (out O, err error) {
	bound, c, person, err := h.toBaseB(ctx, in)
	if err != nil {
		return out, err
	}
	resp, err := call(bound, h, h.Backends.B, "base B", true, func(ctx context.Context, conn *grpc.ClientConn) (T, error) {
		return read(ctx, basebv1.NewProfileServiceClient(conn), person, c.ClientIP)
	})
	if err == nil {
		h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-b")
	}
	return converted(resp, err, convert)
}

func (h *Handlers) getProfile(ctx context.Context, in *BearerRequest) (*ProfileResponse, error) {
	return readB(h, ctx, in, profileResponse, func(ctx context.Context, b basebv1.ProfileServiceClient, cpf, ip string) (*basebv1.GetProfileResponse, error) {
		return b.GetProfile(ctx, &basebv1.GetProfileRequest{Cpf: cpf, ClientIp: ip})
	})
}

func (h *Handlers) getScore(ctx context.Context, in *BearerRequest) (*ScoreResponse, error) {
	return readB(h, ctx, in, scoreResponse, func(ctx context.Context, b basebv1.ProfileServiceClient, cpf, ip string) (*basebv1.GetScoreResponse, error) {
		return b.GetScore(ctx, &basebv1.GetScoreRequest{Cpf: cpf, ClientIp: ip})
	})
}
