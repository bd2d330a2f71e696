package grpcapi

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

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
