package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

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
// its own entries gets proofs of those only, and another partner's entry
// is "not found" exactly like one that does not exist, whatever state it
// is in (not yet covered by a head, its tree hashes missing). Every
// request is itself recorded in the log before anything is answered.
func (s *AuditServer) GetProof(ctx context.Context, req *baseav1.GetProofRequest) (*baseav1.GetProofResponse, error) {
	if req.GetTreeSize() < 0 {
		return nil, status.Error(codes.InvalidArgument, "tree_size must not be negative")
	}
	id, err := uuid.Parse(req.GetEntryId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "entry id must be a UUID")
	}
	v, err := s.looked(ctx, "", fmt.Sprintf("inclusion proof of entry %s in head %d", id, req.GetTreeSize()))
	if err != nil {
		return nil, err
	}
	partner := ""
	if !v.All {
		partner = v.PartnerID
	}
	p, err := s.Store.ProveEntry(ctx, id.String(), req.GetTreeSize(), partner)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, status.Error(codes.NotFound, strings.TrimPrefix(err.Error(), domain.ErrNotFound.Error()+": "))
	}
	if err != nil {
		return nil, toStatus(err)
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
		AccessDetail: domain.AccessDetail{Purpose: le.GetPurpose(), Reason: le.GetReason(), Fields: le.GetFields(), Outcome: le.GetOutcome(),
			ClientIP: le.GetClientIp(), TraceID: le.GetTraceId(), GrantID: le.GetGrantId()}}}
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
