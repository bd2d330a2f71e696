package grpcapi

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/store"
)

// SubjectServer answers the data subject's report for Base B: what it
// holds about a CPF and the access it keeps (the latest only). Only the
// identities in Allowed (the gateway) may call it.
type SubjectServer struct {
	subjectv1.UnimplementedSubjectServiceServer
	Store   *store.Store
	Allowed []string
}

// GetSubjectData describes the CPF's data in Base B.
func (s *SubjectServer) GetSubjectData(ctx context.Context, req *subjectv1.GetSubjectDataRequest) (*subjectv1.GetSubjectDataResponse, error) {
	if _, err := grpcserver.RequireIdentity(ctx, s.Allowed, "read subject reports"); err != nil {
		return nil, err
	}
	c, err := grpcserver.CPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	d, err := s.Store.Subject(ctx, c)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "base B unavailable")
	}
	out := &subjectv1.GetSubjectDataResponse{Base: "base-b", Holds: d.Holds, Data: d.Data,
		AccessRecord: "Base B keeps the latest access to a profile only (who, when, client IP, what)"}
	if a := d.LastAccess; a != nil && (req.GetSince() == nil || !a.At.Before(req.GetSince().AsTime())) {
		out.Accesses = append(out.Accesses, &subjectv1.Access{At: timestamppb.New(a.At), Who: a.Who, ClientIp: a.IP, What: a.What})
	}
	return out, nil
}
