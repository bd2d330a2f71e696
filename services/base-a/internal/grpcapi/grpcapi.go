// Package grpcapi is Base A's gRPC edge: the mTLS identity check, request
// validation, and the mapping of domain errors to status codes.
//
// One file per concern: identity.go (who may call what; the audit
// reader), people.go (PeopleService: grants, audited reads, loader
// writes), audit.go (AuditService: access logs, history, verification),
// tlog.go (signed heads, proofs, export), subject.go (SubjectService).
// This file holds the request checks and conversions they share, and the
// error mapping.
package grpcapi

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/input"
	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/pkg/postgres"
	"github.com/strata-bureau/strata/proto/errorreasons"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

func caller(ctx context.Context, ac *baseav1.AccessContext) (domain.Caller, error) {
	c := domain.Caller{Identity: grpcserver.Identity(ctx), PartnerID: ac.GetPartnerId(), ClientIP: ac.GetClientIp()}
	if c.PartnerID == "" || input.Token(c.PartnerID, origin.MaxPartnerID, false) != nil {
		return c, status.Error(codes.InvalidArgument, "context.partner_id is required (at most 128 printable ASCII characters)")
	}
	if c.ClientIP != "" && input.IP(c.ClientIP) != nil {
		return c, status.Error(codes.InvalidArgument, "context.client_ip must be an IP address")
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		c.TraceID = sc.TraceID().String()
	}
	return c, nil
}

// grantReasons are the typed reasons (google.rpc.ErrorInfo, domain
// errorreasons.DomainBaseA) of each grant refusal's audit outcome.
var grantReasons = map[string]string{
	domain.OutcomeDeniedUnknown: errorreasons.GrantUnknown, domain.OutcomeDeniedExpired: errorreasons.GrantExpired,
	domain.OutcomeDeniedUsedUp: errorreasons.GrantUsedUp, domain.OutcomeDeniedRevoked: errorreasons.GrantRevoked,
	domain.OutcomeDeniedWrongCPF: errorreasons.GrantWrongCPF, domain.OutcomeDeniedWrongField: errorreasons.GrantWrongField,
	domain.OutcomeDeniedWrongPartner: errorreasons.GrantWrongPartner,
}

// grantRefused is PermissionDenied naming the refusal's reason, never the
// data: typed in an ErrorInfo (what callers branch on) and, for people
// reading logs, in the message.
func grantRefused(err error) error {
	outcome := domain.OutcomeOf(err)
	return errorreasons.Error(codes.PermissionDenied, "grant refused: "+outcome, errorreasons.DomainBaseA, grantReasons[outcome],
		map[string]string{errorreasons.MetaOutcome: outcome})
}

// storeErrors are the store's failures as every base answers them.
var storeErrors = grpcserver.StoreErrors{NotFound: domain.ErrNotFound, Invalid: domain.ErrInvalid, Unavailable: domain.ErrUnavailable,
	NotFoundMessage: "no such CPF", UnavailableMessage: "base A unavailable"}

// toStatus maps domain errors to codes: Base A's own, then the store's
// (storeErrors).
func toStatus(err error) error {
	switch {
	case errors.Is(err, domain.ErrGrantUnknown), errors.Is(err, domain.ErrGrantExpired), errors.Is(err, domain.ErrGrantUsedUp),
		errors.Is(err, domain.ErrGrantRevoked), errors.Is(err, domain.ErrGrantWrongCPF), errors.Is(err, domain.ErrGrantWrongField),
		errors.Is(err, domain.ErrGrantWrongPartner):
		return grantRefused(err)
	case errors.Is(err, domain.ErrAuditFailed):
		return status.Error(codes.Unavailable, "access could not be audited; no data returned")
	case errors.Is(err, context.DeadlineExceeded):
		// The call's deadline passed: grpcserver.Mask answers it
		// DeadlineExceeded, as in every base. It must not reach the
		// IsUnavailable test below, which counts it as the database's.
		return err
	case errors.Is(err, domain.ErrDataLoss):
		// The database answered, and audit data that must be there is not:
		// not a reason to retry, nor to open a breaker.
		return status.Error(codes.DataLoss, err.Error())
	case postgres.IsUnavailable(err):
		// The store passes the driver's errors on as they are: these
		// say the database is unavailable.
		err = fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	// Anything else nobody expected (a bug, a schema mismatch) is left to
	// the server's interceptor (grpcserver.Mask): it logs it with its
	// cause and trace id and answers Internal — 503 means only "retry
	// later".
	return storeErrors.Status(err)
}

var purposeNames = map[baseav1.Purpose]string{
	baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS:  domain.PurposeCreditAnalysis,
	baseav1.Purpose_PURPOSE_FRAUD_PREVENTION: domain.PurposeFraudPrevention,
	baseav1.Purpose_PURPOSE_COLLECTION:       domain.PurposeCollection,
	baseav1.Purpose_PURPOSE_CONSUMER_REQUEST: domain.PurposeConsumerRequest,
}

var fieldNames = map[baseav1.Field]string{
	baseav1.Field_FIELD_NAME: domain.FieldName, baseav1.Field_FIELD_ADDRESS: domain.FieldAddress, baseav1.Field_FIELD_DEBTS: domain.FieldDebts,
}

func purposeProto(p string) baseav1.Purpose {
	for k, v := range purposeNames {
		if v == p {
			return k
		}
	}
	return baseav1.Purpose_PURPOSE_UNSPECIFIED
}

func fieldsProto(fs []string) []baseav1.Field {
	var out []baseav1.Field
	for _, f := range fs {
		for k, v := range fieldNames {
			if v == f {
				out = append(out, k)
			}
		}
	}
	return out
}

func fieldsFrom(fs []baseav1.Field) ([]string, error) {
	var out []string
	for _, f := range fs {
		n, ok := fieldNames[f]
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "unknown field (want name, address or debts)")
		}
		out = append(out, n)
	}
	return out, nil
}

var outcomeProto = map[string]baseav1.Outcome{
	domain.OutcomeAllowed: baseav1.Outcome_OUTCOME_ALLOWED, domain.OutcomeGrantIssued: baseav1.Outcome_OUTCOME_GRANT_ISSUED,
	domain.OutcomeGrantRevoked: baseav1.Outcome_OUTCOME_GRANT_REVOKED, domain.OutcomeDeniedExpired: baseav1.Outcome_OUTCOME_DENIED_EXPIRED,
	domain.OutcomeDeniedUsedUp: baseav1.Outcome_OUTCOME_DENIED_USED_UP, domain.OutcomeDeniedRevoked: baseav1.Outcome_OUTCOME_DENIED_REVOKED,
	domain.OutcomeDeniedWrongCPF: baseav1.Outcome_OUTCOME_DENIED_WRONG_CPF, domain.OutcomeDeniedWrongField: baseav1.Outcome_OUTCOME_DENIED_WRONG_FIELD,
	domain.OutcomeDeniedWrongPartner: baseav1.Outcome_OUTCOME_DENIED_WRONG_PARTNER, domain.OutcomeDeniedUnknown: baseav1.Outcome_OUTCOME_DENIED_UNKNOWN_GRANT,
	domain.OutcomeNotFound: baseav1.Outcome_OUTCOME_NOT_FOUND, domain.OutcomeAuditRead: baseav1.Outcome_OUTCOME_AUDIT_READ,
}

var debtStatus = map[string]baseav1.DebtStatus{
	domain.DebtOpen: baseav1.DebtStatus_DEBT_STATUS_OPEN, domain.DebtPaid: baseav1.DebtStatus_DEBT_STATUS_PAID,
	domain.DebtRenegotiated: baseav1.DebtStatus_DEBT_STATUS_RENEGOTIATED,
}
