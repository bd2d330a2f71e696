// Package grpcapi is Base A's gRPC edge: the mTLS identity check, request
// validation, and the mapping of domain errors to status codes.
package grpcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/input"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// Access says which mTLS identities may call which service.
type Access struct {
	People []string // PeopleService reads and grants (the gateway)
	Audit  []string // AuditService (the gateway, strata-audit)
	Write  []string // UpsertPerson, RecordDebt (named internal loaders)
	// AuditOnBehalf are the Audit identities that act for a partner's API
	// key (the gateway): they must name the partner (x-partner-id) and
	// hold every-partner access only when they say so (x-audit-scope: all).
	// Any other Audit identity is bureau staff (strata-audit).
	AuditOnBehalf []string
}

// Metadata keys the gateway sets on calls it makes for a partner's key.
const (
	MDPartnerID  = "x-partner-id"
	MDAuditScope = "x-audit-scope"
	MDClientIP   = "x-client-ip"
	// MDAuditEntry (response header) names the audit entry of a read.
	MDAuditEntry = "strata-audit-entry"
)

type viewerKey struct{}

// publicAudit are the audit methods that serve public material only.
var publicAudit = map[string]bool{
	"/basea.v1.AuditService/GetHead":        true,
	"/basea.v1.AuditService/GetConsistency": true,
}

// Viewer is who reads the audit log.
type Viewer struct {
	Identity  string
	PartnerID string // the partner of the key, or the staff identity
	ClientIP  string
	// All is true for bureau staff and regulators (audit:read); false
	// restricts every read to PartnerID's own entries (audit:own).
	All bool
}

// viewer derives the audit reader from the verified identity and, for an
// on-behalf identity, the metadata it sent. It fails closed: a partner
// named twice differently, or not at all, is refused.
func viewer(ctx context.Context, a Access, id string) (Viewer, error) {
	v := Viewer{Identity: id, PartnerID: id, All: true}
	if !slices.Contains(a.AuditOnBehalf, id) {
		return v, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	one := func(k string) (string, bool) {
		vs := md.Get(k)
		for _, x := range vs[min(1, len(vs)):] {
			if x != vs[0] {
				return "", false
			}
		}
		if len(vs) == 0 {
			return "", true
		}
		return vs[0], true
	}
	partner, ok := one(MDPartnerID)
	if !ok || partner == "" || len(partner) > 128 {
		return v, status.Error(codes.PermissionDenied, "the caller's partner (x-partner-id) is required, once")
	}
	scope, ok := one(MDAuditScope)
	if !ok {
		return v, status.Error(codes.PermissionDenied, "x-audit-scope given twice")
	}
	ip, _ := one(MDClientIP)
	if len(ip) > 64 {
		ip = ip[:64]
	}
	v.PartnerID, v.ClientIP, v.All = partner, ip, scope == "all"
	return v, nil
}

// ViewerFrom returns the audit reader the interceptor admitted.
func ViewerFrom(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(viewerKey{}).(Viewer)
	return v, ok
}

var writeMethods = []string{"/basea.v1.PeopleService/UpsertPerson", "/basea.v1.PeopleService/RecordDebt"}

// IdentityInterceptor admits only verified client certificates whose
// identity is allowed for the method (pkg/grpcserver.Access, as Base B and
// C do), puts the identity in the context and, for AuditService, the
// audit reader.
func IdentityInterceptor(a Access) grpc.UnaryServerInterceptor {
	allow := grpcserver.Access{Guard: "/basea.v1.", Groups: []grpcserver.Group{
		{Name: "audit", Methods: []string{"/basea.v1.AuditService/"}, Allowed: a.Audit},
		{Name: "write", Methods: writeMethods, Allowed: a.Write},
		{Name: "people", Allowed: a.People},
	}}.Unary()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return allow(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			if strings.HasPrefix(info.FullMethod, "/basea.v1.AuditService/") {
				// Public material (heads, consistency proofs) needs no
				// reader; everything else refuses without one.
				v, err := viewer(ctx, a, grpcserver.Identity(ctx))
				if err != nil && !publicAudit[info.FullMethod] {
					return nil, err
				}
				if err == nil {
					ctx = context.WithValue(ctx, viewerKey{}, v)
				}
			}
			return handler(ctx, req)
		})
	}
}

func caller(ctx context.Context, ac *baseav1.AccessContext) (domain.Caller, error) {
	c := domain.Caller{Identity: grpcserver.Identity(ctx), PartnerID: ac.GetPartnerId(), ClientIP: ac.GetClientIp()}
	if c.PartnerID == "" || input.Token(c.PartnerID, 128, false) != nil {
		return c, status.Error(codes.InvalidArgument, "context.partner_id is required (at most 128 printable ASCII characters)")
	}
	if c.ClientIP != "" && input.IP(c.ClientIP) != nil {
		return c, status.Error(codes.InvalidArgument, "context.client_ip must be an IP address")
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		c.TraceID = sc.TraceID().String()
	}
	return c, nil
}

func parseCPF(s string) (string, error) {
	c, err := cpf.Parse(s)
	if err != nil {
		return "", status.Error(codes.InvalidArgument, "invalid CPF: "+err.Error())
	}
	return c.String(), nil
}

// toStatus maps domain errors to codes. Grant refusals are PermissionDenied
// with a stable message naming the reason, never the data.
func toStatus(err error) error {
	switch {
	case errors.Is(err, domain.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, domain.ErrNotFound):
		return status.Error(codes.NotFound, "no such CPF")
	case errors.Is(err, domain.ErrGrantUnknown), errors.Is(err, domain.ErrGrantExpired), errors.Is(err, domain.ErrGrantUsedUp),
		errors.Is(err, domain.ErrGrantRevoked), errors.Is(err, domain.ErrGrantWrongCPF), errors.Is(err, domain.ErrGrantWrongField),
		errors.Is(err, domain.ErrGrantWrongPartner):
		return status.Error(codes.PermissionDenied, "grant refused: "+domain.OutcomeOf(err))
	case errors.Is(err, domain.ErrAuditFailed):
		return status.Error(codes.Unavailable, "access could not be audited; no data returned")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	// Anything else is a database failure (or an open breaker).
	return status.Error(codes.Unavailable, "base A unavailable")
}

var purposeNames = map[baseav1.Purpose]string{
	baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS:  domain.PurposeCreditAnalysis,
	baseav1.Purpose_PURPOSE_FRAUD_PREVENTION: domain.PurposeFraudPrevention,
	baseav1.Purpose_PURPOSE_COLLECTION:       domain.PurposeCollection,
	baseav1.Purpose_PURPOSE_CONSUMER_REQUEST: domain.PurposeConsumerRequest,
}

var fieldNames = map[baseav1.Field]string{
	baseav1.Field_FIELD_NAME: domain.FieldName, baseav1.Field_FIELD_ADDRESS: domain.FieldAddress, baseav1.Field_FIELD_DEBTS: domain.FieldDebts,
}

func purposeProto(p string) baseav1.Purpose {
	for k, v := range purposeNames {
		if v == p {
			return k
		}
	}
	return baseav1.Purpose_PURPOSE_UNSPECIFIED
}

func fieldsProto(fs []string) []baseav1.Field {
	var out []baseav1.Field
	for _, f := range fs {
		for k, v := range fieldNames {
			if v == f {
				out = append(out, k)
			}
		}
	}
	return out
}

func fieldsFrom(fs []baseav1.Field) ([]string, error) {
	var out []string
	for _, f := range fs {
		n, ok := fieldNames[f]
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "unknown field (want name, address or debts)")
		}
		out = append(out, n)
	}
	return out, nil
}

var outcomeProto = map[string]baseav1.Outcome{
	domain.OutcomeAllowed: baseav1.Outcome_OUTCOME_ALLOWED, domain.OutcomeGrantIssued: baseav1.Outcome_OUTCOME_GRANT_ISSUED,
	domain.OutcomeGrantRevoked: baseav1.Outcome_OUTCOME_GRANT_REVOKED, domain.OutcomeDeniedExpired: baseav1.Outcome_OUTCOME_DENIED_EXPIRED,
	domain.OutcomeDeniedUsedUp: baseav1.Outcome_OUTCOME_DENIED_USED_UP, domain.OutcomeDeniedRevoked: baseav1.Outcome_OUTCOME_DENIED_REVOKED,
	domain.OutcomeDeniedWrongCPF: baseav1.Outcome_OUTCOME_DENIED_WRONG_CPF, domain.OutcomeDeniedWrongField: baseav1.Outcome_OUTCOME_DENIED_WRONG_FIELD,
	domain.OutcomeDeniedWrongPartner: baseav1.Outcome_OUTCOME_DENIED_WRONG_PARTNER, domain.OutcomeDeniedUnknown: baseav1.Outcome_OUTCOME_DENIED_UNKNOWN_GRANT,
	domain.OutcomeNotFound: baseav1.Outcome_OUTCOME_NOT_FOUND, domain.OutcomeAuditRead: baseav1.Outcome_OUTCOME_AUDIT_READ,
}

var debtStatus = map[string]baseav1.DebtStatus{
	domain.DebtOpen: baseav1.DebtStatus_DEBT_STATUS_OPEN, domain.DebtPaid: baseav1.DebtStatus_DEBT_STATUS_PAID,
	domain.DebtRenegotiated: baseav1.DebtStatus_DEBT_STATUS_RENEGOTIATED,
}

// PeopleServer implements baseav1.PeopleServiceServer.
type PeopleServer struct {
	baseav1.UnimplementedPeopleServiceServer
	Store *store.Store
}

// RequestGrant issues a grant.
func (s *PeopleServer) RequestGrant(ctx context.Context, req *baseav1.RequestGrantRequest) (*baseav1.RequestGrantResponse, error) {
	c, err := caller(ctx, req.GetContext())
	if err != nil {
		return nil, err
	}
	person, err := parseCPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	fields, err := fieldsFrom(req.GetFields())
	if err != nil {
		return nil, err
	}
	purpose := purposeNames[req.GetPurpose()]
	g, err := s.Store.IssueGrant(ctx, c, domain.GrantRequest{CPF: person, Purpose: purpose, Reason: req.GetReason(), Fields: fields,
		TTL: time.Duration(req.GetTtlSeconds()) * time.Second, MaxUses: int(req.GetMaxUses())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &baseav1.RequestGrantResponse{GrantId: g.ID, Token: g.Token, Cpf: g.CPF, Fields: fieldsProto(g.Fields),
		Purpose: purposeProto(g.Purpose), ExpiresAt: timestamppb.New(g.ExpiresAt), MaxUses: int32(g.MaxUses)}, nil
}

// RevokeGrant revokes a grant of the caller's partner.
func (s *PeopleServer) RevokeGrant(ctx context.Context, req *baseav1.RevokeGrantRequest) (*baseav1.RevokeGrantResponse, error) {
	c, err := caller(ctx, req.GetContext())
	if err != nil {
		return nil, err
	}
	if err := s.Store.RevokeGrant(ctx, c, req.GetGrantId()); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return nil, status.Error(codes.NotFound, "no such grant")
		}
		return nil, toStatus(err)
	}
	return &baseav1.RevokeGrantResponse{}, nil
}

func (s *PeopleServer) read(ctx context.Context, ac *baseav1.AccessContext, rawCPF, token string, want []string) (*domain.Person, error) {
	c, err := caller(ctx, ac)
	if err != nil {
		return nil, err
	}
	person, err := parseCPF(rawCPF)
	if err != nil {
		return nil, err
	}
	p, err := s.Store.ReadWithGrant(ctx, c, person, token, want)
	if err != nil {
		return nil, toStatus(err)
	}
	// The read's receipt: its audit entry, provable later (GetProof).
	_ = grpc.SetHeader(ctx, metadata.Pairs(MDAuditEntry, p.AuditEntryID))
	return p, nil
}

// GetPerson returns every field the grant opens.
func (s *PeopleServer) GetPerson(ctx context.Context, req *baseav1.GetPersonRequest) (*baseav1.GetPersonResponse, error) {
	p, err := s.read(ctx, req.GetContext(), req.GetCpf(), req.GetGrantToken(), nil)
	if err != nil {
		return nil, err
	}
	out := &baseav1.Person{Cpf: p.CPF, Name: p.Name, Fields: fieldsProto(p.Fields), Debts: debtsProto(p.Debts)}
	if a := p.Address; a != nil {
		out.Address = &baseav1.Address{Street: a.Street, Number: a.Number, Complement: a.Complement, District: a.District,
			City: a.City, State: a.State, PostalCode: a.PostalCode}
	}
	return &baseav1.GetPersonResponse{Person: out}, nil
}

// ListDebts returns the debts; the grant must cover "debts".
func (s *PeopleServer) ListDebts(ctx context.Context, req *baseav1.ListDebtsRequest) (*baseav1.ListDebtsResponse, error) {
	p, err := s.read(ctx, req.GetContext(), req.GetCpf(), req.GetGrantToken(), []string{domain.FieldDebts})
	if err != nil {
		return nil, err
	}
	return &baseav1.ListDebtsResponse{Cpf: p.CPF, Debts: debtsProto(p.Debts)}, nil
}

func debtsProto(ds []domain.Debt) []*baseav1.Debt {
	out := []*baseav1.Debt{}
	for _, d := range ds {
		out = append(out, &baseav1.Debt{Creditor: d.Creditor, ContractId: d.ContractID, AmountCents: d.AmountCents,
			Currency: d.Currency, DueDate: d.DueDate, Status: debtStatus[d.Status],
			CreatedAt: timestamppb.New(d.CreatedAt), UpdatedAt: timestamppb.New(d.UpdatedAt)})
	}
	return out
}

// UpsertPerson writes a person (internal loaders).
func (s *PeopleServer) UpsertPerson(ctx context.Context, req *baseav1.UpsertPersonRequest) (*baseav1.UpsertPersonResponse, error) {
	person, err := parseCPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.GetName())
	if name == "" || len(name) > 200 {
		return nil, status.Error(codes.InvalidArgument, "name is required (at most 200 characters)")
	}
	a := req.GetAddress()
	addr := domain.Address{Street: a.GetStreet(), Number: a.GetNumber(), Complement: a.GetComplement(), District: a.GetDistrict(),
		City: a.GetCity(), State: a.GetState(), PostalCode: a.GetPostalCode()}
	if err := s.Store.UpsertPerson(ctx, person, name, addr); err != nil {
		return nil, toStatus(err)
	}
	return &baseav1.UpsertPersonResponse{}, nil
}

// RecordDebt writes a debt (internal loaders).
func (s *PeopleServer) RecordDebt(ctx context.Context, req *baseav1.RecordDebtRequest) (*baseav1.RecordDebtResponse, error) {
	person, err := parseCPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	d := req.GetDebt()
	var st string
	for k, v := range debtStatus {
		if v == d.GetStatus() {
			st = k
		}
	}
	if st == "" || d.GetContractId() == "" || d.GetCreditor() == "" || d.GetAmountCents() <= 0 || len(d.GetCurrency()) != 3 {
		return nil, status.Error(codes.InvalidArgument, "debt needs creditor, contract_id, a positive amount_cents, currency and status")
	}
	if _, err := time.Parse("2006-01-02", d.GetDueDate()); err != nil {
		return nil, status.Error(codes.InvalidArgument, "due_date must be YYYY-MM-DD")
	}
	err = s.Store.RecordDebt(ctx, person, domain.Debt{Creditor: d.GetCreditor(), ContractID: d.GetContractId(),
		AmountCents: d.GetAmountCents(), Currency: d.GetCurrency(), DueDate: d.GetDueDate(), Status: st})
	if err != nil {
		return nil, toStatus(err)
	}
	return &baseav1.RecordDebtResponse{}, nil
}

// AuditServer implements baseav1.AuditServiceServer.
type AuditServer struct {
	baseav1.UnimplementedAuditServiceServer
	Store   *store.Store
	Chain   store.ChainOptions
	History time.Duration
}

const maxPage = 500

// looked records a read of the audit log in the log itself (who looked,
// when, at what), before anything is answered: no record, no answer.
func (s *AuditServer) looked(ctx context.Context, cpf, what string) (Viewer, error) {
	v, ok := ViewerFrom(ctx)
	if !ok {
		return v, status.Error(codes.PermissionDenied, "no verified audit reader")
	}
	c := domain.Caller{PartnerID: v.PartnerID, Identity: v.Identity, ClientIP: v.ClientIP}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		c.TraceID = sc.TraceID().String()
	}
	if err := s.Store.RecordAuditRead(ctx, c, cpf, what); err != nil {
		return v, toStatus(err)
	}
	return v, nil
}

// staffOnly refuses readers restricted to their own entries.
func staffOnly(ctx context.Context) error {
	if v, ok := ViewerFrom(ctx); !ok || !v.All {
		return status.Error(codes.PermissionDenied, "this needs every-partner audit access (audit:read)")
	}
	return nil
}

// ListAccessLogs filters the log. A reader restricted to its own entries
// (audit:own) sees only its partner's, whatever partner filter it sends.
func (s *AuditServer) ListAccessLogs(ctx context.Context, req *baseav1.ListAccessLogsRequest) (*baseav1.ListAccessLogsResponse, error) {
	f := domain.AuditFilter{PartnerID: req.GetPartnerId(), Limit: int(req.GetPageSize())}
	if v, ok := ViewerFrom(ctx); !ok {
		return nil, status.Error(codes.PermissionDenied, "no verified audit reader")
	} else if !v.All {
		f.PartnerID = v.PartnerID
	}
	if req.GetCpf() != "" {
		c, err := parseCPF(req.GetCpf())
		if err != nil {
			return nil, err
		}
		f.CPF = c
	}
	if req.GetPurpose() != baseav1.Purpose_PURPOSE_UNSPECIFIED {
		f.Purpose = purposeNames[req.GetPurpose()]
	}
	if req.GetOutcome() != baseav1.Outcome_OUTCOME_UNSPECIFIED {
		for k, v := range outcomeProto {
			if v == req.GetOutcome() {
				f.Outcome = k
			}
		}
	}
	if req.GetFrom() != nil {
		f.From = req.GetFrom().AsTime()
	}
	if req.GetTo() != nil {
		f.To = req.GetTo().AsTime()
	}
	switch {
	case f.Limit == 0:
		f.Limit = 100
	case f.Limit < 0 || f.Limit > maxPage:
		return nil, status.Errorf(codes.InvalidArgument, "page_size must be 1 to %d", maxPage)
	}
	if tok := req.GetPageToken(); tok != "" {
		id, err := decodeToken(tok)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "invalid page_token")
		}
		f.AfterID = id
	}
	if _, err := s.looked(ctx, f.CPF, fmt.Sprintf("list access logs: partner=%q purpose=%q outcome=%q from=%s to=%s after=%d",
		f.PartnerID, f.Purpose, f.Outcome, fmtTime(f.From), fmtTime(f.To), f.AfterID)); err != nil {
		return nil, err
	}
	entries, next, err := s.Store.ListAudit(ctx, f)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &baseav1.ListAccessLogsResponse{Entries: entriesProto(entries)}
	if next > 0 {
		resp.NextPageToken = encodeToken(next)
	}
	return resp, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func encodeToken(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10)))
}

func decodeToken(tok string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) > 20 {
		return 0, domain.ErrInvalid
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || id <= 0 {
		return 0, domain.ErrInvalid
	}
	return id, nil
}

func entriesProto(es []domain.AuditEntry) []*baseav1.AuditEntry {
	out := make([]*baseav1.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, &baseav1.AuditEntry{Id: e.ID, Seq: e.Seq, At: timestamppb.New(e.At), PartnerId: e.PartnerID,
			Caller: e.Caller, Cpf: e.CPF, Purpose: purposeProto(e.Purpose), Reason: e.Reason, Fields: fieldsProto(e.Fields),
			Outcome: outcomeProto[e.Outcome], ClientIp: e.ClientIP, TraceId: e.TraceID, GrantId: e.GrantID})
	}
	return out
}

// GetAccessHistory lists who read or was granted this CPF's data within
// the history window (Decreto 9.936/2019 art. 10).
func (s *AuditServer) GetAccessHistory(ctx context.Context, req *baseav1.GetAccessHistoryRequest) (*baseav1.GetAccessHistoryResponse, error) {
	if err := staffOnly(ctx); err != nil {
		return nil, err
	}
	c, err := parseCPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	if _, err := s.looked(ctx, c, "access history of a CPF"); err != nil {
		return nil, err
	}
	since := time.Now().Add(-s.History).UTC()
	resp := &baseav1.GetAccessHistoryResponse{Cpf: c, Since: timestamppb.New(since)}
	var after int64
	for {
		entries, next, err := s.Store.ListAudit(ctx, domain.AuditFilter{CPF: c, From: since, AfterID: after, Limit: maxPage})
		if err != nil {
			return nil, toStatus(err)
		}
		for _, e := range entries {
			if e.Outcome == domain.OutcomeAllowed || e.Outcome == domain.OutcomeGrantIssued {
				resp.Entries = append(resp.Entries, entriesProto([]domain.AuditEntry{e})...)
			}
		}
		if next == 0 || len(resp.Entries) >= 10000 {
			break
		}
		after = next
	}
	return resp, nil
}

// VerifyChain checks the log's integrity.
func (s *AuditServer) VerifyChain(ctx context.Context, req *baseav1.VerifyChainRequest) (*baseav1.VerifyChainResponse, error) {
	if req.GetFromSeq() < 0 || req.GetToSeq() < 0 || (req.GetToSeq() > 0 && req.GetToSeq() < req.GetFromSeq()) {
		return nil, status.Error(codes.InvalidArgument, "from_seq and to_seq must be non-negative and ordered")
	}
	if err := staffOnly(ctx); err != nil {
		return nil, err
	}
	v, err := s.Store.Verify(ctx, s.Chain, req.GetFromSeq(), req.GetToSeq())
	if err != nil {
		return nil, toStatus(err)
	}
	return &baseav1.VerifyChainResponse{Ok: v.OK, CheckedEntries: v.CheckedEntries, FirstBadEntry: v.FirstBadEntry,
		Problem: v.Problem, CheckpointsVerified: v.CheckpointsVerified, PurgedThrough: v.PurgedThrough,
		TreeVerifiedSize: v.TreeSize, Incomplete: v.Incomplete, GrantsChecked: v.GrantsChecked}, nil
}

func (s *AuditServer) headProto(h audit.Head) *baseav1.GetHeadResponse {
	return &baseav1.GetHeadResponse{Note: h.Note, Size: h.Size, Root: h.Root[:], SignedAt: timestamppb.New(h.At),
		VerifierKey: s.Chain.Keys.VerifierKey()}
}

// GetHead returns the latest signed tree head: public material.
func (s *AuditServer) GetHead(ctx context.Context, _ *baseav1.GetHeadRequest) (*baseav1.GetHeadResponse, error) {
	h, err := s.Store.LatestHead(ctx)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "no signed head yet")
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return s.headProto(h), nil
}

// GetProof proves an entry is in a signed head. A reader restricted to
// its own entries gets proofs of those only.
func (s *AuditServer) GetProof(ctx context.Context, req *baseav1.GetProofRequest) (*baseav1.GetProofResponse, error) {
	if req.GetTreeSize() < 0 {
		return nil, status.Error(codes.InvalidArgument, "tree_size must not be negative")
	}
	p, err := s.Store.ProveEntry(ctx, req.GetEntryId(), req.GetTreeSize())
	if errors.Is(err, domain.ErrNotFound) {
		return nil, status.Error(codes.NotFound, strings.TrimPrefix(err.Error(), domain.ErrNotFound.Error()+": "))
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if v, ok := ViewerFrom(ctx); !ok || (!v.All && v.PartnerID != p.Partner) {
		return nil, status.Error(codes.NotFound, "no such entry (or not yet in the log)")
	}
	out := &baseav1.GetProofResponse{EntryId: p.EntryID, Seq: p.Seq, LeafIndex: p.Seq - 1, LeafHash: p.LeafHash[:],
		Head: s.headProto(p.Head), LeafData: p.LeafData}
	for _, h := range p.Proof {
		out.Proof = append(out.Proof, h[:])
	}
	return out, nil
}

// GetConsistency proves one tree is a prefix of a later one.
func (s *AuditServer) GetConsistency(ctx context.Context, req *baseav1.GetConsistencyRequest) (*baseav1.GetConsistencyResponse, error) {
	p, err := s.Store.ProveConsistency(ctx, req.GetOldSize(), req.GetNewSize())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &baseav1.GetConsistencyResponse{}
	for _, h := range p {
		out.Proof = append(out.Proof, h[:])
	}
	return out, nil
}

// ExportLog pages through the log for outside verifiers (audit:read).
func (s *AuditServer) ExportLog(ctx context.Context, req *baseav1.ExportLogRequest) (*baseav1.ExportLogResponse, error) {
	if err := staffOnly(ctx); err != nil {
		return nil, err
	}
	n := int(req.GetPageSize())
	switch {
	case n == 0:
		n = 1000
	case n < 0 || n > 5000:
		return nil, status.Error(codes.InvalidArgument, "page_size must be 1 to 5000")
	}
	if req.GetAfterSeq() < 0 {
		return nil, status.Error(codes.InvalidArgument, "after_seq must not be negative")
	}
	if _, err := s.looked(ctx, "", fmt.Sprintf("export log after seq %d", req.GetAfterSeq())); err != nil {
		return nil, err
	}
	p, err := s.Store.ExportLog(ctx, req.GetAfterSeq(), n)
	if err != nil {
		return nil, toStatus(err)
	}
	return ExportProto(p), nil
}

// ExportProto converts a log page.
func ExportProto(p *store.LogPage) *baseav1.ExportLogResponse {
	out := &baseav1.ExportLogResponse{Heads: p.Heads, AnchorSize: p.AnchorSize, More: p.More}
	for i, h := range p.AnchorEdge {
		out.AnchorEdge = append(out.AnchorEdge, &baseav1.TreeHash{Index: i, Hash: h[:]})
	}
	for _, e := range p.Entries {
		out.Entries = append(out.Entries, LogEntryProto(e))
	}
	return out
}

// LogEntryProto converts an entry with its stored hashes.
func LogEntryProto(e audit.LogEntry) *baseav1.LogEntry {
	r := e.Row
	le := &baseav1.LogEntry{Seq: e.Seq, Deleted: e.Deleted, AuditId: r.AuditID, EntryId: r.EntryID, PartnerId: r.PartnerID,
		Caller: r.Caller, CpfIndex: r.CPFIndex, CpfEnc: e.CPFEnc, Purpose: r.Purpose, Reason: r.Reason, Fields: r.Fields,
		Outcome: r.Outcome, ClientIp: r.ClientIP, TraceId: r.TraceID, GrantId: r.GrantID}
	if !e.Deleted {
		le.At = timestamppb.New(r.At)
	}
	for _, h := range e.Stored {
		le.StoredHashes = append(le.StoredHashes, h[:])
	}
	return le
}

// LogEntryFrom converts back (verifiers).
func LogEntryFrom(le *baseav1.LogEntry) audit.LogEntry {
	e := audit.LogEntry{Seq: le.GetSeq(), Deleted: le.GetDeleted(), CPFEnc: le.GetCpfEnc(), Row: audit.Row{AuditID: le.GetAuditId(),
		EntryID: le.GetEntryId(), PartnerID: le.GetPartnerId(), Caller: le.GetCaller(), CPFIndex: le.GetCpfIndex(),
		Purpose: le.GetPurpose(), Reason: le.GetReason(), Fields: le.GetFields(), Outcome: le.GetOutcome(), ClientIP: le.GetClientIp(),
		TraceID: le.GetTraceId(), GrantID: le.GetGrantId()}}
	if e.Row.Fields == nil {
		e.Row.Fields = []string{}
	}
	if le.GetAt() != nil {
		e.Row.At = le.GetAt().AsTime().UTC()
	}
	// Every exported entry comes from the tree: its stored hashes are
	// always compared (none stored is a finding, not a skip).
	e.Stored = []tlog.Hash{}
	for _, h := range le.GetStoredHashes() {
		var x tlog.Hash
		copy(x[:], h)
		e.Stored = append(e.Stored, x)
	}
	return e
}
