package grpcapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

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
	person, err := grpcserver.CPF(req.GetCpf())
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
	person, err := grpcserver.CPF(rawCPF)
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
	person, err := grpcserver.CPF(req.GetCpf())
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
	person, err := grpcserver.CPF(req.GetCpf())
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
