package grpcapi

import (
	"context"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
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

// Base A answers the store's failures as every base does
// (grpcserver.StoreErrors), the driver's own unavailability included; a
// passed deadline is left to grpcserver.Mask (DeadlineExceeded) although
// the driver's test counts it as the database being unavailable.
func TestStoreFailuresAnswerAsEveryBase(t *testing.T) {
	t.Parallel()
	for _, err := range []error{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), fmt.Errorf("base-a->postgres: %w", breaker.ErrOpen)} {
		if st := status.Convert(toStatus(err)); st.Code() != codes.Unavailable || st.Message() != "base A unavailable" {
			t.Errorf("%v: %v", err, st)
		}
	}
	if err := toStatus(fmt.Errorf("read: %w", context.DeadlineExceeded)); err.Error() != "read: context deadline exceeded" {
		t.Errorf("passed deadline: %v", err)
	}
	if st := status.Convert(toStatus(fmt.Errorf("%w: tree hash 7", domain.ErrDataLoss))); st.Code() != codes.DataLoss {
		t.Errorf("data loss: %v", st)
	}
}
