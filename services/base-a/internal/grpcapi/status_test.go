package grpcapi

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/proto/errorreasons"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

// Every grant refusal crosses to the gateway as PermissionDenied with a
// typed reason (ErrorInfo in Base A's domain) and its audit outcome; the
// message keeps naming the outcome for people reading logs.
func TestGrantRefusalsCarryTypedReasons(t *testing.T) {
	t.Parallel()
	cases := map[error]string{
		domain.ErrGrantUnknown: errorreasons.GrantUnknown, domain.ErrGrantExpired: errorreasons.GrantExpired,
		domain.ErrGrantUsedUp: errorreasons.GrantUsedUp, domain.ErrGrantRevoked: errorreasons.GrantRevoked,
		domain.ErrGrantWrongCPF: errorreasons.GrantWrongCPF, domain.ErrGrantWrongField: errorreasons.GrantWrongField,
		domain.ErrGrantWrongPartner: errorreasons.GrantWrongPartner,
	}
	for cause, reason := range cases {
		err := toStatus(fmt.Errorf("read: %w", cause))
		info := errorreasons.Of(err)
		outcome := domain.OutcomeOf(cause)
		if status.Code(err) != codes.PermissionDenied || info.GetReason() != reason || info.GetDomain() != errorreasons.DomainBaseA ||
			info.GetMetadata()[errorreasons.MetaOutcome] != outcome || status.Convert(err).Message() != "grant refused: "+outcome {
			t.Errorf("%v: %v %v", cause, err, info)
		}
	}
	if len(grantReasons) != len(cases) {
		t.Errorf("grantReasons has %d outcomes, want %d", len(grantReasons), len(cases))
	}
	for _, other := range []error{domain.ErrInvalid, domain.ErrNotFound, domain.ErrAuditFailed, fmt.Errorf("db down")} {
		if info := errorreasons.Of(toStatus(other)); info != nil {
			t.Errorf("%v carries reason %v", other, info)
		}
	}
}
