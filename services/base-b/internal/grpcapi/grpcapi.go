// Package grpcapi is Base B's gRPC edge: validation, access logging and
// the mapping of domain errors to status codes.
package grpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/input"
	"github.com/strata-bureau/strata/pkg/mongodb"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/authz"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
	"github.com/strata-bureau/strata/services/base-b/internal/profiles"
	"github.com/strata-bureau/strata/services/base-b/internal/score"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

// Server implements basebv1.ProfileServiceServer.
type Server struct {
	basebv1.UnimplementedProfileServiceServer
	Store *store.Store
	// Profiles serves reads from the cache and is told of every write.
	Profiles *profiles.Service
	Breaker  *breaker.Breaker
	Logger   *slog.Logger
	Now      func() time.Time

	// pending holds the latest access per CPF, written to the profiles
	// once a second in the background: reads never wait for a write, and
	// a hot profile costs one write a second, not one per read.
	mu      sync.Mutex
	pending map[string]access
	started bool
}

type access struct {
	who, ip, what string
	at            time.Time
}

const maxPending = 50_000

// Run buffers last_access updates and writes them once a second, in one
// bulk write, until ctx ends (then it writes what is left). Until Run has
// started, each update is written at once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	s.pending, s.started = map[string]access{}, true
	s.mu.Unlock()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			s.flush(ctx)
		}
	}
}

func (s *Server) flush(ctx context.Context) {
	s.mu.Lock()
	batch := s.pending
	s.pending = map[string]access{}
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	all := make(map[string]store.Access, len(batch))
	for c, a := range batch {
		all[c] = store.Access{Who: a.who, IP: a.ip, What: a.what, At: a.at}
	}
	// One bulk write a second for every CPF read in that second.
	if err := s.Breaker.Run(func() error { return s.Store.RecordAccesses(ctx, all) }); err != nil {
		s.Logger.WarnContext(ctx, "last_access updates failed", "count", len(all), "err", err)
	}
}

// IsStoreFailure tells the breaker which errors are the store's fault.
func IsStoreFailure(err error) bool {
	return errors.Is(err, domain.ErrUnavailable) || errors.Is(err, mongodb.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// storeErrors are the store's failures as every base answers them.
var storeErrors = grpcserver.StoreErrors{NotFound: domain.ErrNotFound, Invalid: domain.ErrInvalid, Unavailable: domain.ErrUnavailable,
	NotFoundMessage: "no such profile", UnavailableMessage: "profile store unavailable"}

// toStatus maps domain errors to codes; Base B has none but the store's.
func toStatus(err error) error { return storeErrors.Status(err) }

// clientIP is the address an access is recorded under. Only a caller
// trusted to speak for the partner (the gateway) may name the partner's
// address, in the request or in metadata (grpcserver.Origin); anyone else
// is recorded at its own address.
func clientIP(ctx context.Context, fromReq string) string {
	if grpcserver.MetadataTrusted(ctx) && input.IP(fromReq) == nil {
		return fromReq
	}
	return grpcserver.Origin(ctx).ClientIP
}

// logAccess records who, when, from where and what: a structured log line
// and, in the background, the CPF's last_access (its own collection).
func (s *Server) logAccess(ctx context.Context, c, ip, what string) {
	p, _ := authz.FromContext(ctx)
	who := p.ClientID
	if who == "" {
		who = p.Subject
	}
	s.Logger.InfoContext(ctx, "access", "who", who, "partner", p.PartnerID, "client_ip", ip, "what", what, "cpf", cpf.CPF(c).Masked())
	if c == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return
	}
	if _, ok := s.pending[c]; !ok && len(s.pending) >= maxPending {
		s.Logger.WarnContext(ctx, "last_access backlog full; update dropped (the log line above stands)")
		return
	}
	s.pending[c] = access{who: who, ip: ip, what: what, at: s.Now().UTC()}
}

// read parses the request's CPF, reads its profile (from the cache when
// it is there) and records the access as what.
func (s *Server) read(ctx context.Context, reqCPF, reqIP, what string) (string, *domain.Profile, bool, error) {
	c, err := grpcserver.CPF(reqCPF)
	if err != nil {
		return "", nil, false, err
	}
	p, stale, err := s.Profiles.Get(ctx, c)
	if err != nil {
		return "", nil, false, toStatus(err)
	}
	s.logAccess(ctx, c, clientIP(ctx, reqIP), what)
	return c, p, stale, nil
}

// write parses the request's CPF, runs the store write fn on it through
// the breaker and, when it succeeded, invalidates the CPF in every
// replica's cache.
func (s *Server) write(ctx context.Context, reqCPF string, fn func(c string) error) error {
	c, err := grpcserver.CPF(reqCPF)
	if err != nil {
		return err
	}
	if err := s.Breaker.Run(func() error { return fn(c) }); err != nil {
		return toStatus(err)
	}
	s.Profiles.Written(ctx, c)
	return nil
}

// GetProfile returns a profile.
func (s *Server) GetProfile(ctx context.Context, req *basebv1.GetProfileRequest) (*basebv1.GetProfileResponse, error) {
	_, p, stale, err := s.read(ctx, req.GetCpf(), req.GetClientIp(), "profile")
	if err != nil {
		return nil, err
	}
	return &basebv1.GetProfileResponse{Profile: s.profileProto(p), Stale: stale}, nil
}

// GetScore scores a profile.
func (s *Server) GetScore(ctx context.Context, req *basebv1.GetScoreRequest) (*basebv1.GetScoreResponse, error) {
	c, p, stale, err := s.read(ctx, req.GetCpf(), req.GetClientIp(), "score")
	if err != nil {
		return nil, err
	}
	sc := score.Compute(p, s.Now())
	out := &basebv1.Score{Cpf: c, Score: int32(sc.Score), Band: bandProto[sc.Band], ModelVersion: sc.ModelVersion}
	for _, r := range sc.Reasons {
		out.Reasons = append(out.Reasons, &basebv1.ScoreReason{Code: r.Code, Description: r.Description})
	}
	return &basebv1.GetScoreResponse{Score: out, Stale: stale}, nil
}

var bandProto = map[string]basebv1.Band{"very_low": basebv1.Band_BAND_VERY_LOW, "low": basebv1.Band_BAND_LOW,
	"medium": basebv1.Band_BAND_MEDIUM, "high": basebv1.Band_BAND_HIGH, "very_high": basebv1.Band_BAND_VERY_HIGH}

var assetKinds = map[basebv1.AssetKind]string{basebv1.AssetKind_ASSET_KIND_REAL_ESTATE: domain.AssetRealEstate,
	basebv1.AssetKind_ASSET_KIND_VEHICLE: domain.AssetVehicle, basebv1.AssetKind_ASSET_KIND_INVESTMENT: domain.AssetInvestment,
	basebv1.AssetKind_ASSET_KIND_OTHER: domain.AssetOther}

var incomeKinds = map[basebv1.IncomeKind]string{basebv1.IncomeKind_INCOME_KIND_SALARY: domain.IncomeSalary,
	basebv1.IncomeKind_INCOME_KIND_SELF_EMPLOYED: domain.IncomeSelfEmployed, basebv1.IncomeKind_INCOME_KIND_PENSION: domain.IncomePension,
	basebv1.IncomeKind_INCOME_KIND_RENTAL: domain.IncomeRental, basebv1.IncomeKind_INCOME_KIND_INVESTMENT: domain.IncomeInvestment,
	basebv1.IncomeKind_INCOME_KIND_OTHER: domain.IncomeOther}

func reverse[K comparable, V comparable](m map[K]V, v V) K {
	for k, x := range m {
		if x == v {
			return k
		}
	}
	var zero K
	return zero
}

func (s *Server) profileProto(p *domain.Profile) *basebv1.Profile {
	out := &basebv1.Profile{Cpf: p.CPF, BirthDate: p.BirthDate, Age: int32(p.Age(s.Now())), UpdatedAt: timestamppb.New(p.UpdatedAt),
		Address: &basebv1.Address{Street: p.Address.Street, Number: p.Address.Number, Complement: p.Address.Complement,
			District: p.Address.District, City: p.Address.City, State: p.Address.State, PostalCode: p.Address.PostalCode}}
	for _, a := range p.Assets {
		out.Assets = append(out.Assets, assetProto(a))
	}
	for _, i := range p.IncomeSources {
		out.IncomeSources = append(out.IncomeSources, incomeProto(i))
	}
	if d := p.DebtSummary; d != nil {
		out.DebtSummary = &basebv1.DebtSummary{OpenCount: d.OpenCount, OpenAmountCents: d.OpenAmountCents, Currency: d.Currency, AsOf: timestamppb.New(d.AsOf)}
	}
	return out
}

func assetProto(a domain.Asset) *basebv1.Asset {
	return &basebv1.Asset{Id: a.ID, Kind: reverse(assetKinds, a.Kind), Description: a.Description, ValueCents: a.ValueCents, Currency: a.Currency}
}

func incomeProto(i domain.IncomeSource) *basebv1.IncomeSource {
	return &basebv1.IncomeSource{Id: i.ID, Kind: reverse(incomeKinds, i.Kind), MonthlyAmountCents: i.MonthlyAmountCents, Currency: i.Currency, Since: i.Since}
}

func validDate(s string) bool {
	t, err := time.Parse("2006-01-02", s)
	return err == nil && t.Year() >= 1900 && t.Before(time.Now())
}

func validCurrency(s string) bool { return len(s) == 3 && strings.ToUpper(s) == s }

func invalid(msg string) error { return status.Error(codes.InvalidArgument, msg) }

// UpsertProfile creates or updates birth date and address.
func (s *Server) UpsertProfile(ctx context.Context, req *basebv1.UpsertProfileRequest) (*basebv1.UpsertProfileResponse, error) {
	if !validDate(req.GetBirthDate()) {
		return nil, invalid("birth_date must be a past date, YYYY-MM-DD")
	}
	a := req.GetAddress()
	if len(a.GetState()) != 0 && len(a.GetState()) != 2 {
		return nil, invalid("address.state must be a two-letter UF")
	}
	addr := domain.Address{Street: a.GetStreet(), Number: a.GetNumber(), Complement: a.GetComplement(), District: a.GetDistrict(),
		City: a.GetCity(), State: a.GetState(), PostalCode: a.GetPostalCode()}
	var p *domain.Profile
	err := s.write(ctx, req.GetCpf(), func(c string) (err error) {
		p, err = s.Store.Upsert(ctx, c, req.GetBirthDate(), addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &basebv1.UpsertProfileResponse{Profile: s.profileProto(p)}, nil
}

// AddAsset adds an asset.
func (s *Server) AddAsset(ctx context.Context, req *basebv1.AddAssetRequest) (*basebv1.AddAssetResponse, error) {
	a := req.GetAsset()
	kind, ok := assetKinds[a.GetKind()]
	if !ok || a.GetValueCents() <= 0 || !validCurrency(a.GetCurrency()) || len(a.GetDescription()) > 200 {
		return nil, invalid("asset needs a kind, a positive value_cents, a currency and a description of at most 200 characters")
	}
	as := domain.Asset{ID: uuid.NewString(), Kind: kind, Description: a.GetDescription(), ValueCents: a.GetValueCents(), Currency: a.GetCurrency()}
	if err := s.write(ctx, req.GetCpf(), func(c string) error { return s.Store.AddAsset(ctx, c, as) }); err != nil {
		return nil, err
	}
	return &basebv1.AddAssetResponse{Asset: assetProto(as)}, nil
}

// RemoveAsset removes an asset.
func (s *Server) RemoveAsset(ctx context.Context, req *basebv1.RemoveAssetRequest) (*basebv1.RemoveAssetResponse, error) {
	if err := s.write(ctx, req.GetCpf(), func(c string) error { return s.Store.RemoveAsset(ctx, c, req.GetAssetId()) }); err != nil {
		return nil, err
	}
	return &basebv1.RemoveAssetResponse{}, nil
}

// AddIncomeSource adds an income source.
func (s *Server) AddIncomeSource(ctx context.Context, req *basebv1.AddIncomeSourceRequest) (*basebv1.AddIncomeSourceResponse, error) {
	i := req.GetIncomeSource()
	kind, ok := incomeKinds[i.GetKind()]
	if !ok || i.GetMonthlyAmountCents() <= 0 || !validCurrency(i.GetCurrency()) || !validDate(i.GetSince()) {
		return nil, invalid("income source needs a kind, a positive monthly_amount_cents, a currency and a past since date")
	}
	is := domain.IncomeSource{ID: uuid.NewString(), Kind: kind, MonthlyAmountCents: i.GetMonthlyAmountCents(), Currency: i.GetCurrency(), Since: i.GetSince()}
	if err := s.write(ctx, req.GetCpf(), func(c string) error { return s.Store.AddIncome(ctx, c, is) }); err != nil {
		return nil, err
	}
	return &basebv1.AddIncomeSourceResponse{IncomeSource: incomeProto(is)}, nil
}

// RemoveIncomeSource removes an income source.
func (s *Server) RemoveIncomeSource(ctx context.Context, req *basebv1.RemoveIncomeSourceRequest) (*basebv1.RemoveIncomeSourceResponse, error) {
	if err := s.write(ctx, req.GetCpf(), func(c string) error { return s.Store.RemoveIncome(ctx, c, req.GetIncomeSourceId()) }); err != nil {
		return nil, err
	}
	return &basebv1.RemoveIncomeSourceResponse{}, nil
}

// EncodeCursor makes an opaque export cursor from the last CPF sent.
func EncodeCursor(c string) string { return base64.RawURLEncoding.EncodeToString([]byte("v1:" + c)) }

// DecodeCursor parses an export cursor.
func DecodeCursor(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(b), "v1:") {
		return "", domain.ErrInvalid
	}
	c := string(b[3:])
	if _, err := cpf.Parse(c); err != nil {
		return "", domain.ErrInvalid
	}
	return c, nil
}

// ExportFeatures streams one feature row per profile in CPF order. gRPC
// flow control applies: Send blocks while the client is not reading, and
// only one page is held in memory.
// ExportTotalHeader is the response header of ExportFeatures that holds
// the number of rows the export will send (counted when it starts).
const ExportTotalHeader = "strata-export-total"

func (s *Server) ExportFeatures(req *basebv1.ExportFeaturesRequest, stream grpc.ServerStreamingServer[basebv1.ExportFeaturesResponse]) error {
	ctx := stream.Context()
	after, err := DecodeCursor(req.GetCursor())
	if err != nil {
		return invalid("invalid cursor")
	}
	batch := int(req.GetBatchSize())
	switch {
	case batch == 0:
		batch = 500
	case batch < 0 || batch > 5000:
		return invalid("batch_size must be 1 to 5000")
	}
	f := store.Filter{AfterCPF: after, Limit: batch}
	if req.GetUpdatedFrom() != nil {
		f.UpdatedFrom = req.GetUpdatedFrom().AsTime()
	}
	if req.GetUpdatedTo() != nil {
		f.UpdatedTo = req.GetUpdatedTo().AsTime()
	}
	s.logAccess(ctx, "", clientIP(ctx, ""), "export")
	// The rows still to come, counted now, go in a header so a client can
	// show progress; an export that cannot count still runs.
	if total, err := breaker.Do(s.Breaker, func() (int64, error) { return s.Store.Count(ctx, f) }); err == nil {
		if err := stream.SendHeader(metadata.Pairs(ExportTotalHeader, strconv.FormatInt(total, 10))); err != nil {
			return err
		}
	}
	now := s.Now()
	for {
		page, err := breaker.Do(s.Breaker, func() ([]domain.Profile, error) { return s.Store.Page(ctx, f) })
		if err != nil {
			return toStatus(err)
		}
		for i := range page {
			p := &page[i]
			row := &basebv1.ExportFeaturesResponse{Cpf: p.CPF, Age: int32(p.Age(now)), TotalAssetsCents: p.AssetsCents(),
				AssetCount: int32(len(p.Assets)), MonthlyIncomeCents: p.MonthlyIncomeCents(), IncomeSourceCount: int32(len(p.IncomeSources)),
				Score: int32(score.Compute(p, now).Score), UpdatedAt: timestamppb.New(p.UpdatedAt), Cursor: EncodeCursor(p.CPF)}
			if d := p.DebtSummary; d != nil {
				row.OpenDebtCount, row.OpenDebtAmountCents = d.OpenCount, d.OpenAmountCents
			}
			if err := stream.Send(row); err != nil {
				return err
			}
		}
		if len(page) < f.Limit {
			return nil
		}
		f.AfterCPF = page[len(page)-1].CPF
	}
}
