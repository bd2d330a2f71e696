// Package domain holds Base A's types, rules and errors.
package domain

import (
	"errors"
	"slices"
	"time"
)

// Errors. Grant refusals are distinct so callers (and auditors) can tell
// them apart; their messages say nothing about the data.
var (
	ErrNotFound    = errors.New("not found")
	ErrInvalid     = errors.New("invalid input")
	ErrUnavailable = errors.New("database unavailable")
	ErrAuditFailed = errors.New("access could not be audited")
	// ErrDataLoss: the database answered, but data that must be there is
	// not (an audit tree hash deleted behind Base A's back). No retry and
	// no breaker can help; an operator must look.
	ErrDataLoss = errors.New("audit data missing")

	ErrGrantUnknown      = errors.New("grant unknown")
	ErrGrantExpired      = errors.New("grant expired")
	ErrGrantUsedUp       = errors.New("grant used up")
	ErrGrantRevoked      = errors.New("grant revoked")
	ErrGrantWrongCPF     = errors.New("grant is for another CPF")
	ErrGrantWrongField   = errors.New("grant does not cover the requested fields")
	ErrGrantWrongPartner = errors.New("grant belongs to another partner")
)

// Purposes a grant may be issued for.
const (
	PurposeCreditAnalysis  = "credit_analysis"
	PurposeFraudPrevention = "fraud_prevention"
	PurposeCollection      = "collection"
	PurposeConsumerRequest = "consumer_request"
)

// Fields a grant may open.
const (
	FieldName    = "name"
	FieldAddress = "address"
	FieldDebts   = "debts"
)

// ValidPurpose reports whether p is a known purpose.
func ValidPurpose(p string) bool {
	switch p {
	case PurposeCreditAnalysis, PurposeFraudPrevention, PurposeCollection, PurposeConsumerRequest:
		return true
	}
	return false
}

// ValidField reports whether f is a known field.
func ValidField(f string) bool { return f == FieldName || f == FieldAddress || f == FieldDebts }

// Outcomes written to the audit log.
const (
	OutcomeAllowed            = "allowed"
	OutcomeGrantIssued        = "grant_issued"
	OutcomeGrantRevoked       = "grant_revoked"
	OutcomeDeniedExpired      = "denied_expired"
	OutcomeDeniedUsedUp       = "denied_used_up"
	OutcomeDeniedRevoked      = "denied_revoked"
	OutcomeDeniedWrongCPF     = "denied_wrong_cpf"
	OutcomeDeniedWrongField   = "denied_wrong_field"
	OutcomeDeniedWrongPartner = "denied_wrong_partner"
	OutcomeDeniedUnknown      = "denied_unknown_grant"
	OutcomeNotFound           = "not_found"
	// OutcomeAuditRead records a read of the audit log itself: who looked
	// (partner, caller), when, and at what (the reason holds the query).
	OutcomeAuditRead = "audit_read"
)

// refusalOutcomes pairs each grant refusal with its audit outcome, in the
// order OutcomeOf tries them.
var refusalOutcomes = []struct {
	err     error
	outcome string
}{
	{ErrGrantExpired, OutcomeDeniedExpired},
	{ErrGrantUsedUp, OutcomeDeniedUsedUp},
	{ErrGrantRevoked, OutcomeDeniedRevoked},
	{ErrGrantWrongCPF, OutcomeDeniedWrongCPF},
	{ErrGrantWrongField, OutcomeDeniedWrongField},
	{ErrGrantWrongPartner, OutcomeDeniedWrongPartner},
	{ErrNotFound, OutcomeNotFound},
}

// OutcomeOf maps a grant refusal to its audit outcome.
func OutcomeOf(err error) string {
	for _, r := range refusalOutcomes {
		if errors.Is(err, r.err) {
			return r.outcome
		}
	}
	return OutcomeDeniedUnknown
}

// Address of a person.
type Address struct {
	Street     string `json:"street"`
	Number     string `json:"number"`
	Complement string `json:"complement"`
	District   string `json:"district"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postal_code"`
}

// Debt statuses.
const (
	DebtOpen         = "open"
	DebtPaid         = "paid"
	DebtRenegotiated = "renegotiated"
)

// Debt is one debt.
type Debt struct {
	Creditor    string    `json:"creditor"`
	ContractID  string    `json:"contract_id"`
	AmountCents int64     `json:"amount_cents"`
	Currency    string    `json:"currency"`
	DueDate     string    `json:"due_date"`
	Status      string    `json:"-"`
	CreatedAt   time.Time `json:"-"`
	UpdatedAt   time.Time `json:"-"`
}

// Person is what a read returns, limited to the granted fields.
type Person struct {
	CPF     string
	Name    string
	Address *Address
	Debts   []Debt
	Fields  []string
	// AuditEntryID is the audit entry of this read (the partner's receipt:
	// it can later ask for its inclusion proof).
	AuditEntryID string
}

// Caller identifies who asks: the partner (from the gateway) and the mTLS
// identity of the calling service.
type Caller struct {
	PartnerID string
	Identity  string
	ClientIP  string
	TraceID   string
}

// GrantRequest asks for a grant.
type GrantRequest struct {
	CPF     string
	Purpose string
	Reason  string
	Fields  []string
	TTL     time.Duration
	MaxUses int
}

// Grant is an issued grant; Token is set only when it is issued.
type Grant struct {
	ID        string
	Token     string
	CPF       string
	Purpose   string
	Reason    string
	Fields    []string
	ExpiresAt time.Time
	MaxUses   int
}

// Covers reports whether the grant opens every wanted field.
func (g *Grant) Covers(want []string) bool {
	for _, f := range want {
		if !slices.Contains(g.Fields, f) {
			return false
		}
	}
	return true
}

// AuditEntry is one line of the access log.
type AuditEntry struct {
	ID        string
	Seq       int64 // 0 until chained
	At        time.Time
	PartnerID string
	Caller    string
	CPF       string
	AccessDetail
}

// AccessDetail is what an audited access was for and how it ended: the
// part of an audit entry that its readers (AuditEntry) and the log's digest
// input (audit.Row) hold alike.
type AccessDetail struct {
	Purpose  string
	Reason   string
	Fields   []string
	Outcome  string
	ClientIP string
	TraceID  string
	GrantID  string
}

// AuditFilter selects entries.
type AuditFilter struct {
	CPF       string
	PartnerID string
	Purpose   string
	Outcome   string
	From, To  time.Time
	AfterID   int64
	Limit     int
}

// Verification is the result of checking the chain.
type Verification struct {
	OK                  bool
	CheckedEntries      int64
	FirstBadEntry       int64
	Problem             string
	CheckpointsVerified int64
	// PurgedThrough is the last entry removed by retention purges (0: none);
	// the chain is verified from the signed checkpoint there.
	PurgedThrough int64
	// TreeSize is how far the verifiable log is verified; Incomplete when
	// the call's budget ran out first (call again to continue).
	TreeSize   int64
	Incomplete bool
	// GrantsChecked counts grants whose uses matched their allowed entries.
	GrantsChecked int64
}
