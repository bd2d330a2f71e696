package grpcapi

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

// SubjectServer answers the data subject's report for Base A: what it
// holds about a CPF and every access to it in its audit log (all
// outcomes, refusals and audit reads included) since the given time. Only
// audit identities may call it, and through the gateway only for
// every-partner readers (audit:read); the read is itself audited.
type SubjectServer struct {
	subjectv1.UnimplementedSubjectServiceServer
	Audit  *AuditServer
	Access Access
}

// GetSubjectData describes the CPF's data in Base A.
func (s *SubjectServer) GetSubjectData(ctx context.Context, req *subjectv1.GetSubjectDataRequest) (*subjectv1.GetSubjectDataResponse, error) {
	id, err := grpcserver.RequireIdentity(ctx, s.Access.Audit, "read subject reports")
	if err != nil {
		return nil, err
	}
	v, err := viewer(ctx, s.Access, id)
	if err != nil {
		return nil, err
	}
	if !v.All {
		return nil, status.Error(codes.PermissionDenied, "this needs every-partner audit access (audit:read)")
	}
	ctx = context.WithValue(ctx, viewerKey{}, v)
	c, err := grpcserver.CPF(req.GetCpf())
	if err != nil {
		return nil, err
	}
	since := time.Now().Add(-s.Audit.History).UTC()
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	if _, err := s.Audit.looked(ctx, c, "data subject's report since "+since.Format(time.RFC3339)); err != nil {
		return nil, err
	}
	h, err := s.Audit.Store.Holdings(ctx, c)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &subjectv1.GetSubjectDataResponse{Base: "base-a", Holds: h.Person,
		AccessRecord: "Base A's tamper-evident audit log: every attempt (allowed, refused, grants) and every read of the log"}
	if h.Person {
		out.Data = append(out.Data, "CPF (encrypted)", "name (encrypted)", "address (encrypted)", fmt.Sprintf("debts: %d (encrypted)", h.Debts))
	}
	if h.Grants > 0 {
		out.Data = append(out.Data, fmt.Sprintf("grants issued for this CPF still kept: %d", h.Grants))
	}
	var after int64
	for {
		entries, next, err := s.Audit.Store.ListAudit(ctx, domain.AuditFilter{CPF: c, From: since, AfterID: after, Limit: maxPage})
		if err != nil {
			return nil, toStatus(err)
		}
		for _, e := range entries {
			out.Accesses = append(out.Accesses, &subjectv1.Access{At: timestamppb.New(e.At), PartnerId: e.PartnerID, Who: e.Caller,
				ClientIp: e.ClientIP, Purpose: e.Purpose, What: fmt.Sprintf("%s %v: %s", e.Outcome, e.Fields, e.Reason)})
		}
		if next == 0 || len(out.Accesses) >= 10000 {
			break
		}
		after = next
	}
	return out, nil
}
