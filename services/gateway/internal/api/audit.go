package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/strata-bureau/strata/pkg/input"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
)

// AuditEntry is one line of Base A's access log.
type AuditEntry struct {
	ID        string     `json:"id"`
	Seq       int64      `json:"seq" doc:"position in the hash chain; 0 until chained (within a second)"`
	At        *time.Time `json:"at"`
	PartnerID string     `json:"partner_id"`
	Caller    string     `json:"caller"`
	CPF       string     `json:"cpf"`
	Purpose   string     `json:"purpose"`
	Reason    string     `json:"reason"`
	Fields    []string   `json:"fields"`
	Outcome   string     `json:"outcome"`
	ClientIP  string     `json:"client_ip"`
	TraceID   string     `json:"trace_id"`
}

// outcomeName is an outcome's public name: its enum name without
// OUTCOME_, in lower case (accessLogs reads a filter back the same way).
func outcomeName(o baseav1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(baseav1.Outcome_name[int32(o)], "OUTCOME_"))
}

func entries(es []*baseav1.AuditEntry) []AuditEntry {
	out := []AuditEntry{}
	for _, e := range es {
		out = append(out, AuditEntry{ID: e.GetId(), Seq: e.GetSeq(), At: ts(e.GetAt()), PartnerID: e.GetPartnerId(), Caller: e.GetCaller(),
			CPF: e.GetCpf(), Purpose: purposeName(e.GetPurpose()), Reason: e.GetReason(), Fields: fieldNames(e.GetFields()),
			Outcome: outcomeName(e.GetOutcome()), ClientIP: e.GetClientIp(), TraceID: e.GetTraceId()})
	}
	return out
}

// AccessLogsRequest filters the log.
type AccessLogsRequest struct {
	CPF       string    `query:"cpf" maxLength:"20"`
	PartnerID string    `query:"partner_id" maxLength:"128"`
	Purpose   string    `query:"purpose" enum:"credit_analysis,fraud_prevention,collection,consumer_request,"`
	Outcome   string    `query:"outcome" maxLength:"40" doc:"e.g. allowed, grant_issued, denied_expired"`
	From      time.Time `query:"from"`
	To        time.Time `query:"to"`
	PageSize  int32     `query:"page_size" minimum:"1" maximum:"500" default:"100"`
	PageToken string    `query:"page_token" maxLength:"64"`
}

// AccessLogsResponse is a page of entries.
type AccessLogsResponse struct {
	Body struct {
		Entries       []AuditEntry `json:"entries"`
		NextPageToken string       `json:"next_page_token,omitempty"`
	}
}

// auditReader checks the key holds audit:read (every partner) or, when own
// is acceptable, audit:own, and tells Base A which in the call's metadata
// (Base A enforces it; x-partner-id is already there).
func auditReader(ctx context.Context, own bool) (context.Context, Caller, bool, error) {
	c := callerFrom(ctx)
	scope := ""
	switch {
	case apikey.ScopeAuditRead.In(c.Scopes):
		scope = "all"
	case own && apikey.ScopeAuditOwn.In(c.Scopes):
		scope = "own"
	default:
		need := string(apikey.ScopeAuditRead)
		if own {
			need += " or " + string(apikey.ScopeAuditOwn)
		}
		return ctx, c, false, insufficientScope(need)
	}
	// x-partner-id and x-client-ip are already there (KeyAuth, pkg/origin).
	return metadata.AppendToOutgoingContext(ctx, "x-audit-scope", scope), c, scope == "all", nil
}

// expensiveAudit is auditReader for a call that also takes a slot of the
// expensive-call budget; release gives it back.
func (h *Handlers) expensiveAudit(ctx context.Context, own bool) (context.Context, Caller, bool, func(), error) {
	ctx, c, all, err := auditReader(ctx, own)
	if err != nil {
		return ctx, c, all, nil, err
	}
	release, err := h.expensive(c)
	return ctx, c, all, release, err
}

// fromAudit is one call to Base A's AuditService (reads: retried on
// another replica), its answer converted.
func fromAudit[T, O any](ctx context.Context, h *Handlers, convert func(T) O,
	fn func(context.Context, baseav1.AuditServiceClient) (T, error)) (O, error) {
	resp, err := call(ctx, h, h.Backends.A, "base A", true, func(ctx context.Context, conn *grpc.ClientConn) (T, error) {
		return fn(ctx, baseav1.NewAuditServiceClient(conn))
	})
	return converted(resp, err, convert)
}

// accessLogsResponse converts a page of the access log.
func accessLogsResponse(resp *baseav1.ListAccessLogsResponse) *AccessLogsResponse {
	out := &AccessLogsResponse{}
	out.Body.Entries, out.Body.NextPageToken = entries(resp.GetEntries()), resp.GetNextPageToken()
	return out
}

func (h *Handlers) accessLogs(ctx context.Context, in *AccessLogsRequest) (*AccessLogsResponse, error) {
	ctx, c, all, release, err := h.expensiveAudit(ctx, true)
	if err != nil {
		return nil, err
	}
	defer release()
	if !all {
		in.PartnerID = c.PartnerID // audit:own: the caller's partner, whatever it asked
	}
	if err := errors.Join(checkToken("partner_id", in.PartnerID, 128), checkToken("page_token", in.PageToken, 64)); err != nil {
		return nil, invalid(err.Error())
	}
	req := &baseav1.ListAccessLogsRequest{PartnerId: in.PartnerID, PageSize: in.PageSize, PageToken: in.PageToken, Purpose: purposes[in.Purpose]}
	if in.CPF != "" {
		c, err := parseCPF(in.CPF)
		if err != nil {
			return nil, err
		}
		req.Cpf = c
	}
	if in.Outcome != "" {
		v, ok := baseav1.Outcome_value["OUTCOME_"+input.UpperASCII(in.Outcome)]
		if !ok {
			return nil, invalid("unknown outcome " + in.Outcome)
		}
		req.Outcome = baseav1.Outcome(v)
	}
	if !in.From.IsZero() {
		req.From = timestamppb.New(in.From)
	}
	if !in.To.IsZero() {
		req.To = timestamppb.New(in.To)
	}
	return fromAudit(ctx, h, accessLogsResponse, func(ctx context.Context, a baseav1.AuditServiceClient) (*baseav1.ListAccessLogsResponse, error) {
		return a.ListAccessLogs(ctx, req)
	})
}

// HistoryResponse lists accesses in the window.
type HistoryResponse struct {
	Body struct {
		CPF     string       `json:"cpf"`
		Since   *time.Time   `json:"since"`
		Entries []AuditEntry `json:"entries"`
	}
}

// historyResponse converts a CPF's access history.
func historyResponse(resp *baseav1.GetAccessHistoryResponse) *HistoryResponse {
	out := &HistoryResponse{}
	out.Body.CPF, out.Body.Since, out.Body.Entries = resp.GetCpf(), ts(resp.GetSince()), entries(resp.GetEntries())
	return out
}

func (h *Handlers) accessHistory(ctx context.Context, in *CPFPath) (*HistoryResponse, error) {
	ctx, _, _, release, err := h.expensiveAudit(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()
	c, err := parseCPF(in.CPF)
	if err != nil {
		return nil, err
	}
	return fromAudit(ctx, h, historyResponse, func(ctx context.Context, a baseav1.AuditServiceClient) (*baseav1.GetAccessHistoryResponse, error) {
		return a.GetAccessHistory(ctx, &baseav1.GetAccessHistoryRequest{Cpf: c})
	})
}

// VerifyResponse is the chain check.
type VerifyResponse struct {
	Body struct {
		OK                  bool   `json:"ok"`
		CheckedEntries      int64  `json:"checked_entries"`
		FirstBadEntry       int64  `json:"first_bad_entry"`
		Problem             string `json:"problem,omitempty"`
		CheckpointsVerified int64  `json:"checkpoints_verified"`
		PurgedThrough       int64  `json:"purged_through" doc:"Last entry removed by a signed retention purge (0: none); the chain is verified from the checkpoint there."`
	}
}

// verifyResponse converts a chain check.
func verifyResponse(resp *baseav1.VerifyChainResponse) *VerifyResponse {
	out := &VerifyResponse{}
	out.Body.OK, out.Body.CheckedEntries, out.Body.FirstBadEntry = resp.GetOk(), resp.GetCheckedEntries(), resp.GetFirstBadEntry()
	out.Body.Problem, out.Body.CheckpointsVerified = resp.GetProblem(), resp.GetCheckpointsVerified()
	out.Body.PurgedThrough = resp.GetPurgedThrough()
	return out
}

func (h *Handlers) verify(ctx context.Context, _ *struct{}) (*VerifyResponse, error) {
	ctx, _, _, release, err := h.expensiveAudit(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()
	return fromAudit(ctx, h, verifyResponse, func(ctx context.Context, a baseav1.AuditServiceClient) (*baseav1.VerifyChainResponse, error) {
		return a.VerifyChain(ctx, &baseav1.VerifyChainRequest{})
	})
}

// Head is a signed tree head of Base A's verifiable log.
type Head struct {
	TreeSize    int64      `json:"tree_size"`
	RootHash    []byte     `json:"root_hash" doc:"RFC 6962 Merkle tree hash (base64)"`
	SignedAt    *time.Time `json:"signed_at"`
	Note        string     `json:"note" doc:"the signed head in signed-note format (golang.org/x/mod/sumdb/note; Ed25519)"`
	VerifierKey string     `json:"verifier_key" doc:"the key the note verifies with; obtain it out of band to trust it"`
}

func headOf(h *baseav1.GetHeadResponse) Head {
	return Head{TreeSize: h.GetSize(), RootHash: h.GetRoot(), SignedAt: ts(h.GetSignedAt()), Note: string(h.GetNote()), VerifierKey: h.GetVerifierKey()}
}

// HeadResponse is the latest signed head.
type HeadResponse struct {
	Body Head
}

// headResponse converts the latest signed head.
func headResponse(resp *baseav1.GetHeadResponse) *HeadResponse {
	return &HeadResponse{Body: headOf(resp)}
}

func (h *Handlers) auditHead(ctx context.Context, _ *struct{}) (*HeadResponse, error) {
	ctx, _, _, err := auditReader(ctx, true)
	if err != nil {
		return nil, err
	}
	return fromAudit(ctx, h, headResponse, func(ctx context.Context, a baseav1.AuditServiceClient) (*baseav1.GetHeadResponse, error) {
		return a.GetHead(ctx, &baseav1.GetHeadRequest{})
	})
}

// ProofRequest names an entry and optionally a tree size.
type ProofRequest struct {
	ID       string `path:"id" maxLength:"64" doc:"the audit entry id (the Strata-Audit-Entry header of a read)"`
	TreeSize int64  `query:"tree_size" minimum:"0" doc:"prove against the signed head of this size (default: the latest)"`
}

// ProofResponse proves an entry is in a signed head.
type ProofResponse struct {
	Body struct {
		EntryID   string   `json:"entry_id"`
		Seq       int64    `json:"seq"`
		LeafIndex int64    `json:"leaf_index"`
		LeafHash  []byte   `json:"leaf_hash" doc:"RFC 6962 leaf hash of leaf_data (base64)"`
		LeafData  []byte   `json:"leaf_data" doc:"the canonical encoding of the entry the leaf commits to (base64)"`
		Proof     [][]byte `json:"proof" doc:"the inclusion proof (tlog.RecordProof), base64 hashes"`
		Head      Head     `json:"head"`
	}
}

// proofResponse converts an inclusion proof (never a null proof).
func proofResponse(resp *baseav1.GetProofResponse) *ProofResponse {
	out := &ProofResponse{}
	b := &out.Body
	b.EntryID, b.Seq, b.LeafIndex, b.LeafHash, b.LeafData = resp.GetEntryId(), resp.GetSeq(), resp.GetLeafIndex(), resp.GetLeafHash(), resp.GetLeafData()
	b.Proof, b.Head = resp.GetProof(), headOf(resp.GetHead())
	if b.Proof == nil {
		b.Proof = [][]byte{}
	}
	return out
}

func (h *Handlers) auditProof(ctx context.Context, in *ProofRequest) (*ProofResponse, error) {
	ctx, _, _, err := auditReader(ctx, true)
	if err != nil {
		return nil, err
	}
	return fromAudit(ctx, h, proofResponse, func(ctx context.Context, a baseav1.AuditServiceClient) (*baseav1.GetProofResponse, error) {
		return a.GetProof(ctx, &baseav1.GetProofRequest{EntryId: in.ID, TreeSize: in.TreeSize})
	})
}
