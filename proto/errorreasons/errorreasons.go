// Package errorreasons names the reasons Strata's services attach to gRPC
// errors as google.rpc.ErrorInfo details (AIP-193), so a caller branches on
// a typed reason instead of parsing the status message. The reasons and
// their domains are part of the internal gRPC contract: add freely, never
// rename.
package errorreasons

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domains: the service that decided the error.
const (
	DomainBaseA = "basea.strata"
)

// Reasons Base A gives with PermissionDenied when it refuses a grant; the
// metadata key MetaOutcome holds the audit outcome it recorded
// (denied_expired, ...).
const (
	GrantUnknown      = "GRANT_UNKNOWN"
	GrantExpired      = "GRANT_EXPIRED"
	GrantUsedUp       = "GRANT_USED_UP"
	GrantRevoked      = "GRANT_REVOKED"
	GrantWrongCPF     = "GRANT_WRONG_CPF"
	GrantWrongField   = "GRANT_WRONG_FIELD"
	GrantWrongPartner = "GRANT_WRONG_PARTNER"
)

// MetaOutcome is the ErrorInfo metadata key of a grant refusal's audit
// outcome.
const MetaOutcome = "outcome"

// Error is a status error with code and msg carrying ErrorInfo{reason,
// domain, metadata}.
func Error(code codes.Code, msg, domain, reason string, metadata map[string]string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: metadata})
	if err != nil {
		// Only an unmarshalable detail fails; ErrorInfo always marshals.
		return status.Error(code, msg)
	}
	return st.Err()
}

// Of returns the ErrorInfo err carries (through wrapping), or nil.
func Of(err error) *errdetails.ErrorInfo {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil
	}
	for _, d := range se.GRPCStatus().Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}
