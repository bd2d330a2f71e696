package grpcapi

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

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
