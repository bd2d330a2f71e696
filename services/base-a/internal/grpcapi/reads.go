package grpcapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

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
