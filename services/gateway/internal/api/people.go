package api

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
)

// Base A: grants (POST /v1/grants, DELETE /v1/grants/{grant_id}) and the
// granted reads (GET /v1/people/{cpf}, GET /v1/people/{cpf}/debts).

var purposes = map[string]baseav1.Purpose{"credit_analysis": baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS,
	"fraud_prevention": baseav1.Purpose_PURPOSE_FRAUD_PREVENTION, "collection": baseav1.Purpose_PURPOSE_COLLECTION,
	"consumer_request": baseav1.Purpose_PURPOSE_CONSUMER_REQUEST}

var fieldsByName = map[string]baseav1.Field{"name": baseav1.Field_FIELD_NAME, "address": baseav1.Field_FIELD_ADDRESS, "debts": baseav1.Field_FIELD_DEBTS}

func purposeName(p baseav1.Purpose) string {
	for k, v := range purposes {
		if v == p {
			return k
		}
	}
	return ""
}

func fieldNames(fs []baseav1.Field) []string {
	out := []string{}
	for _, f := range fs {
		for k, v := range fieldsByName {
			if v == f {
				out = append(out, k)
			}
		}
	}
	return out
}

// GrantRequest is the body of POST /v1/grants.
type GrantRequest struct {
	Body struct {
		CPF        string   `json:"cpf" maxLength:"20" doc:"CPF, with or without punctuation"`
		Purpose    string   `json:"purpose" enum:"credit_analysis,fraud_prevention,collection,consumer_request"`
		Reason     string   `json:"reason" minLength:"10" maxLength:"500"`
		Fields     []string `json:"fields" minItems:"1" maxItems:"3" uniqueItems:"true" enum:"name,address,debts"`
		TTLSeconds int32    `json:"ttl_seconds,omitempty" minimum:"1" maximum:"300" doc:"lifetime, default 120, at most 300"`
		MaxUses    int32    `json:"max_uses,omitempty" minimum:"1" maximum:"10" doc:"number of reads, default 1"`
	}
}

// grantRequest is the RequestGrant message for a checked request.
func grantRequest(c Caller, person string, in *GrantRequest) *baseav1.RequestGrantRequest {
	req := &baseav1.RequestGrantRequest{Context: accessCtx(c), Cpf: person, Purpose: purposes[in.Body.Purpose], Reason: in.Body.Reason,
		TtlSeconds: in.Body.TTLSeconds, MaxUses: in.Body.MaxUses}
	for _, f := range in.Body.Fields {
		req.Fields = append(req.Fields, fieldsByName[f])
	}
	return req
}

// GrantResponse is a new grant; the token is shown once.
type GrantResponse struct {
	Body struct {
		GrantID   string    `json:"grant_id"`
		Token     string    `json:"token" doc:"send as X-Strata-Grant; shown once"`
		CPF       string    `json:"cpf"`
		Fields    []string  `json:"fields"`
		Purpose   string    `json:"purpose"`
		ExpiresAt time.Time `json:"expires_at"`
		MaxUses   int32     `json:"max_uses"`
	}
}

// grantResponse converts Base A's new grant.
func grantResponse(resp *baseav1.RequestGrantResponse) *GrantResponse {
	out := &GrantResponse{}
	out.Body.GrantID, out.Body.Token, out.Body.CPF = resp.GetGrantId(), resp.GetToken(), resp.GetCpf()
	out.Body.Fields, out.Body.Purpose = fieldNames(resp.GetFields()), purposeName(resp.GetPurpose())
	out.Body.ExpiresAt, out.Body.MaxUses = resp.GetExpiresAt().AsTime().UTC(), resp.GetMaxUses()
	return out
}

func accessCtx(c Caller) *baseav1.AccessContext {
	return &baseav1.AccessContext{PartnerId: c.PartnerID, ClientIp: c.ClientIP}
}

func (h *Handlers) createGrant(ctx context.Context, in *GrantRequest) (*GrantResponse, error) {
	c, person, err := callerFor(ctx, apikey.ScopeBaseAGrant, in.Body.CPF)
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", in.Body.Reason, 500); err != nil {
		return nil, err
	}
	req := grantRequest(c, person, in)
	resp, err := call(ctx, h, h.Backends.A, "base A", false, func(ctx context.Context, conn *grpc.ClientConn) (*baseav1.RequestGrantResponse, error) {
		return baseav1.NewPeopleServiceClient(conn).RequestGrant(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return grantResponse(resp), nil
}

// RevokeRequest names a grant.
type RevokeRequest struct {
	GrantID string `path:"grant_id" maxLength:"64"`
}

func (h *Handlers) revokeGrant(ctx context.Context, in *RevokeRequest) (*struct{}, error) {
	c, err := requireScope(ctx, apikey.ScopeBaseAGrant)
	if err != nil {
		return nil, err
	}
	if err := checkToken("grant_id", in.GrantID, 64); err != nil {
		return nil, err
	}
	_, err = call(ctx, h, h.Backends.A, "base A", false, func(ctx context.Context, conn *grpc.ClientConn) (*baseav1.RevokeGrantResponse, error) {
		return baseav1.NewPeopleServiceClient(conn).RevokeGrant(ctx, &baseav1.RevokeGrantRequest{Context: accessCtx(c), GrantId: in.GrantID})
	})
	return nil, err
}

// PersonRequest reads a person with a grant.
type PersonRequest struct {
	CPFPath
	Grant string `header:"X-Strata-Grant" maxLength:"128" doc:"the grant token (required)"`
}

// Address is a postal address.
type Address struct {
	Street     string `json:"street"`
	Number     string `json:"number"`
	Complement string `json:"complement"`
	District   string `json:"district"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postal_code"`
}

// addressMessage is an address as Base A and Base B send it.
type addressMessage interface {
	GetStreet() string
	GetNumber() string
	GetComplement() string
	GetDistrict() string
	GetCity() string
	GetState() string
	GetPostalCode() string
}

// address converts an address message.
func address(a addressMessage) Address {
	return Address{Street: a.GetStreet(), Number: a.GetNumber(), Complement: a.GetComplement(), District: a.GetDistrict(),
		City: a.GetCity(), State: a.GetState(), PostalCode: a.GetPostalCode()}
}

// Debt is one debt.
type Debt struct {
	Creditor    string `json:"creditor"`
	ContractID  string `json:"contract_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	DueDate     string `json:"due_date"`
	Status      string `json:"status" enum:"open,paid,renegotiated"`
}

var debtStatus = map[baseav1.DebtStatus]string{baseav1.DebtStatus_DEBT_STATUS_OPEN: "open", baseav1.DebtStatus_DEBT_STATUS_PAID: "paid",
	baseav1.DebtStatus_DEBT_STATUS_RENEGOTIATED: "renegotiated"}

// debts converts Base A's debts (never nil: an empty list is [] in JSON).
func debts(ds []*baseav1.Debt) []Debt {
	out := []Debt{}
	for _, d := range ds {
		out = append(out, Debt{Creditor: d.GetCreditor(), ContractID: d.GetContractId(), AmountCents: d.GetAmountCents(),
			Currency: d.GetCurrency(), DueDate: d.GetDueDate(), Status: debtStatus[d.GetStatus()]})
	}
	return out
}

// PersonResponse holds only the granted fields.
type PersonResponse struct {
	AuditEntry string `header:"Strata-Audit-Entry" doc:"the id of this read's audit entry: its receipt (GET /v1/audit/entries/{id}/proof)"`
	Body       struct {
		CPF     string   `json:"cpf"`
		Name    string   `json:"name,omitempty"`
		Address *Address `json:"address,omitempty"`
		Debts   []Debt   `json:"debts,omitempty"`
	}
}

// personResponse converts a person read with its audit receipt.
func personResponse(resp *baseav1.GetPersonResponse, md metadata.MD) *PersonResponse {
	p := resp.GetPerson()
	out := &PersonResponse{AuditEntry: receipt(md)}
	out.Body.CPF, out.Body.Name = p.GetCpf(), p.GetName()
	if a := p.GetAddress(); a != nil {
		v := address(a)
		out.Body.Address = &v
	}
	for _, f := range p.GetFields() {
		if f == baseav1.Field_FIELD_DEBTS {
			out.Body.Debts = debts(p.GetDebts())
		}
	}
	return out
}

// receipt is the audit entry id Base A answered a read with.
func receipt(md metadata.MD) string {
	if v := md.Get("strata-audit-entry"); len(v) == 1 && len(v[0]) <= 64 {
		return v[0]
	}
	return ""
}

// grantedRead runs one read with a grant: it checks the read's scope,
// CPF and grant header, calls Base A once (never retried: every attempt
// uses the grant and is audited), records the query and converts the
// answer with Base A's answer header, which holds the read's receipt.
func grantedRead[T, O any](h *Handlers, ctx context.Context, in *PersonRequest, convert func(T, metadata.MD) O,
	read func(context.Context, baseav1.PeopleServiceClient, *baseav1.AccessContext, string, ...grpc.CallOption) (T, error)) (out O, err error) {
	c, person, err := callerFor(ctx, apikey.ScopeBaseARead, in.CPF)
	if err != nil {
		return out, err
	}
	if in.Grant == "" {
		return out, missingCredential("a grant token in X-Strata-Grant")
	}
	var md metadata.MD
	resp, err := call(ctx, h, h.Backends.A, "base A", false, func(ctx context.Context, conn *grpc.ClientConn) (T, error) {
		return read(ctx, baseav1.NewPeopleServiceClient(conn), accessCtx(c), person, grpc.Header(&md))
	})
	if err == nil {
		h.Events.Queried(ctx, person, c.PartnerID, c.ClientIP, "base-a")
	}
	return converted(resp, err, func(resp T) O { return convert(resp, md) })
}

func (h *Handlers) getPerson(ctx context.Context, in *PersonRequest) (*PersonResponse, error) {
	return grantedRead(h, ctx, in, personResponse, func(ctx context.Context, a baseav1.PeopleServiceClient, ac *baseav1.AccessContext, person string,
		opts ...grpc.CallOption) (*baseav1.GetPersonResponse, error) {
		return a.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ac, Cpf: person, GrantToken: in.Grant}, opts...)
	})
}

// DebtsResponse lists debts.
type DebtsResponse struct {
	AuditEntry string `header:"Strata-Audit-Entry" doc:"the id of this read's audit entry: its receipt (GET /v1/audit/entries/{id}/proof)"`
	Body       struct {
		CPF   string `json:"cpf"`
		Debts []Debt `json:"debts"`
	}
}

// debtsResponse converts a debts read with its audit receipt.
func debtsResponse(resp *baseav1.ListDebtsResponse, md metadata.MD) *DebtsResponse {
	out := &DebtsResponse{AuditEntry: receipt(md)}
	out.Body.CPF, out.Body.Debts = resp.GetCpf(), debts(resp.GetDebts())
	return out
}

func (h *Handlers) listDebts(ctx context.Context, in *PersonRequest) (*DebtsResponse, error) {
	return grantedRead(h, ctx, in, debtsResponse, func(ctx context.Context, a baseav1.PeopleServiceClient, ac *baseav1.AccessContext, person string,
		opts ...grpc.CallOption) (*baseav1.ListDebtsResponse, error) {
		return a.ListDebts(ctx, &baseav1.ListDebtsRequest{Context: ac, Cpf: person, GrantToken: in.Grant}, opts...)
	})
}
