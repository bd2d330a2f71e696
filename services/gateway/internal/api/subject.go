package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	subjectv1 "github.com/strata-bureau/strata/proto/gen/go/subject/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// SubjectAccess is one access to the subject's data a base keeps.
type SubjectAccess struct {
	At        *time.Time `json:"at"`
	PartnerID string     `json:"partner_id,omitempty"`
	Who       string     `json:"who,omitempty"`
	ClientIP  string     `json:"client_ip,omitempty"`
	Purpose   string     `json:"purpose,omitempty"`
	What      string     `json:"what"`
}

// SubjectBase is what one base holds and the accesses it keeps.
type SubjectBase struct {
	Base         string          `json:"base"`
	Holds        bool            `json:"holds"`
	Data         []string        `json:"data"`
	AccessRecord string          `json:"access_record" doc:"what this base keeps of accesses, so the report states its limits"`
	Accesses     []SubjectAccess `json:"accesses"`
}

// subjectBase converts one base's answer (lists never nil).
func subjectBase(resp *subjectv1.GetSubjectDataResponse) SubjectBase {
	b := SubjectBase{Base: resp.GetBase(), Holds: resp.GetHolds(), Data: resp.GetData(), AccessRecord: resp.GetAccessRecord(), Accesses: []SubjectAccess{}}
	if b.Data == nil {
		b.Data = []string{}
	}
	for _, a := range resp.GetAccesses() {
		b.Accesses = append(b.Accesses, SubjectAccess{At: ts(a.GetAt()), PartnerID: a.GetPartnerId(), Who: a.GetWho(),
			ClientIP: a.GetClientIp(), Purpose: a.GetPurpose(), What: a.GetWhat()})
	}
	return b
}

// SubjectReportResponse is the data subject's report.
type SubjectReportResponse struct {
	Body struct {
		CPF         string        `json:"cpf"`
		Since       time.Time     `json:"since"`
		GeneratedAt time.Time     `json:"generated_at"`
		Bases       []SubjectBase `json:"bases"`
	}
}

// subjectWindow is the report's window: six months (Decreto 9.936 art. 10).
const subjectWindow = 183 * 24 * time.Hour

func (h *Handlers) subjectReport(ctx context.Context, in *CPFPath) (*SubjectReportResponse, error) {
	ctx, c, _, err := auditReader(ctx, false)
	if err != nil {
		return nil, err
	}
	person, err := parseCPF(in.CPF)
	if err != nil {
		return nil, err
	}
	release, err := h.expensive(c)
	if err != nil {
		return nil, err
	}
	defer release()
	now := time.Now().UTC()
	since := now.Add(-subjectWindow)
	req := &subjectv1.GetSubjectDataRequest{Cpf: person, Since: timestamppb.New(since)}
	pools := []struct {
		name string
		pool *backend.Pool
	}{{"base A", h.Backends.A}, {"base B", h.Backends.B}, {"base C", h.Backends.C}}
	bases := make([]SubjectBase, len(pools))
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range pools {
		g.Go(func() error {
			// The report is complete or not given: a base that cannot
			// answer makes it 503, never a silent gap.
			resp, err := call(gctx, h, p.pool, p.name, true, func(ctx context.Context, conn *grpc.ClientConn) (*subjectv1.GetSubjectDataResponse, error) {
				return subjectv1.NewSubjectServiceClient(conn).GetSubjectData(ctx, req)
			})
			bases[i] = subjectBase(resp)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := &SubjectReportResponse{}
	out.Body.CPF, out.Body.Since, out.Body.GeneratedAt, out.Body.Bases = person, since, now, bases
	return out, nil
}

// ProcessingRecords are the records of processing (LGPD art. 37). The
// gateway serves them from configuration (GATEWAY_PROCESSING_RECORDS_FILE,
// or the built-in description of this deployment), with the recipients
// (partner institutions) from its partner registry.
type ProcessingRecords struct {
	Controller string            `json:"controller"`
	Purposes   []RecordPurpose   `json:"purposes"`
	Bases      []RecordBase      `json:"bases"`
	Recipients []RecordRecipient `json:"recipients"`
}

// RecordPurpose is a purpose of processing and its legal basis.
type RecordPurpose struct {
	Purpose    string `json:"purpose"`
	LegalBasis string `json:"legal_basis"`
}

// RecordBase describes one base: its data, why, for how long, security.
type RecordBase struct {
	Base      string   `json:"base"`
	Data      []string `json:"data"`
	Retention string   `json:"retention"`
	Security  string   `json:"security"`
	Access    string   `json:"access"`
}

// RecordRecipient is a partner institution data is shared with.
type RecordRecipient struct {
	ID    string     `json:"id"`
	Name  string     `json:"name"`
	Since *time.Time `json:"since,omitempty"`
}

// DefaultProcessingRecords describes this deployment as configured by default.
func DefaultProcessingRecords() ProcessingRecords {
	return ProcessingRecords{
		Controller: "the credit bureau operating Strata",
		Purposes: []RecordPurpose{
			{"credit_analysis", "LGPD art. 7 X (protection of credit); Lei 12.414/2011"},
			{"fraud_prevention", "LGPD art. 11 II g (fraud prevention and data subject safety)"},
			{"collection", "LGPD art. 7 VI (regular exercise of rights) and X"},
			{"consumer_request", "LGPD art. 18 (the data subject's own request)"},
		},
		Bases: []RecordBase{
			{Base: "base-a", Data: []string{"CPF", "name", "address", "debts"}, Retention: "while the debt relation lasts; audit log 5 years (never less than 183 days)",
				Security: "AES-256-GCM at rest, CPF as keyed blind index, mTLS, per-read grants, tamper-evident Merkle audit log witnessed outside the database",
				Access:   "partners with a short-lived grant per CPF, purpose and fields; every access audited"},
			{Base: "base-b", Data: []string{"age (birth date)", "assets", "address", "income sources", "debt summary", "credit score with reason codes"},
				Retention: "while the profile is kept; the latest access only", Security: "mTLS, OAuth2 access tokens bound to partners",
				Access: "partners with an OAuth2 token (base-b:read); latest access recorded"},
			{Base: "base-c", Data: []string{"last credit-bureau query", "financial movements", "last credit-card purchase"},
				Retention: "latest movements and last query", Security: "mTLS, basic credentials hashed with Argon2id",
				Access: "partners with basic credentials (base-c:read); last query recorded"},
		},
	}
}

// ProcessingRecordsResponse is the records of processing.
type ProcessingRecordsResponse struct {
	Body ProcessingRecords
}

// PartnerLister lists the partners (recipients).
type PartnerLister interface {
	Recipients(ctx context.Context) ([]RecordRecipient, error)
}

func (h *Handlers) processingRecords(ctx context.Context, _ *struct{}) (*ProcessingRecordsResponse, error) {
	if _, _, _, err := auditReader(ctx, false); err != nil {
		return nil, err
	}
	recs := DefaultProcessingRecords()
	if h.Records != nil {
		recs = *h.Records
	}
	recs.Recipients = []RecordRecipient{}
	if h.Partners != nil {
		rs, err := h.Partners.Recipients(ctx)
		if err != nil {
			return nil, h.masked(ctx, unavailable("the partner registry"), fmt.Errorf("partner registry: %w", err))
		}
		recs.Recipients = rs
	}
	return &ProcessingRecordsResponse{Body: recs}, nil
}

// ParseProcessingRecords reads a records document (JSON, as served).
func ParseProcessingRecords(b []byte) (*ProcessingRecords, error) {
	var r ProcessingRecords
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
