package grpcapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// AuditServer implements baseav1.AuditServiceServer.
type AuditServer struct {
	baseav1.UnimplementedAuditServiceServer
	Store   *store.Store
	Chain   store.ChainOptions
	History time.Duration
	// Metrics, when set, counts verification results.
	Metrics *Metrics
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
		c, err := grpcserver.CPF(req.GetCpf())
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
	c, err := grpcserver.CPF(req.GetCpf())
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
	s.Metrics.verified(ctx, v.OK)
	return &baseav1.VerifyChainResponse{Ok: v.OK, CheckedEntries: v.CheckedEntries, FirstBadEntry: v.FirstBadEntry,
		Problem: v.Problem, CheckpointsVerified: v.CheckpointsVerified, PurgedThrough: v.PurgedThrough,
		TreeVerifiedSize: v.TreeSize, Incomplete: v.Incomplete, GrantsChecked: v.GrantsChecked}, nil
}
