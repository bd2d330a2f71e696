package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/base-c/internal/activity"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// SubjectServer answers the data subject's report for Base C: what it
// holds about a CPF and its query history (the last query only). Only
// the identities in Allowed (the gateway) may call it; no basic
// credentials are involved (subject.v1 is outside Base C's guarded
// package).
type SubjectServer struct {
	subjectv1.UnimplementedSubjectServiceServer
	Activity *activity.Service
	Allowed  []string
}

// GetSubjectData describes the CPF's data in Base C.
func (s *SubjectServer) GetSubjectData(ctx context.Context, req *subjectv1.GetSubjectDataRequest) (*subjectv1.GetSubjectDataResponse, error) {
	if _, err := grpcserver.RequireIdentity(ctx, s.Allowed, "read subject reports"); err != nil {
		return nil, err
	}
	c, err := grpcserver.CPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	out := &subjectv1.GetSubjectDataResponse{Base: "base-c",
		AccessRecord: "Base C keeps the last query of a CPF only (when, partner, client IP, which base); no per-request log"}
	a, _, err := s.Activity.Get(ctx, c)
	if errors.Is(err, domain.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, "base C unavailable")
	}
	out.Holds = !a.Empty()
	if a.LastQuery != nil {
		out.Data = append(out.Data, "last credit-bureau query")
	}
	if a.LastPurchase != nil {
		out.Data = append(out.Data, "last credit-card purchase")
	}
	out.Data = append(out.Data, fmt.Sprintf("financial movements (latest %d kept with the activity)", len(a.Movements)))
	if q := a.LastQuery; q != nil && (req.GetSince() == nil || !q.QueriedAt.Before(req.GetSince().AsTime())) {
		out.Accesses = append(out.Accesses, &subjectv1.Access{At: timestamppb.New(q.QueriedAt), PartnerId: q.PartnerID,
			ClientIp: q.ClientIP, What: "CPF queried through the gateway (" + q.Base + ")"})
	}
	return out, nil
}
