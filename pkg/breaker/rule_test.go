package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
)

// Every gRPC code, answered by a backend, is either the backend's failure
// (counted) or the caller's (never counted); a table keeps the rule honest
// when a code is added.
func TestRulePerGRPCCode(t *testing.T) {
	t.Parallel()
	counted := map[codes.Code]bool{
		codes.OK: false, codes.Canceled: false, codes.Unknown: true, codes.InvalidArgument: false,
		codes.DeadlineExceeded: true, codes.NotFound: false, codes.AlreadyExists: false,
		codes.PermissionDenied: false, codes.ResourceExhausted: false, codes.FailedPrecondition: false,
		codes.Aborted: false, codes.OutOfRange: false, codes.Unimplemented: false, codes.Internal: true,
		codes.Unavailable: true, codes.DataLoss: false, codes.Unauthenticated: false,
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		want, ok := counted[c]
		if !ok {
			t.Fatalf("code %s missing from the table", c)
		}
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			err := status.Error(c, "x")
			if c == codes.OK {
				err = nil
			}
			if got := breaker.IsBackendFailure(err); got != want {
				t.Fatalf("IsBackendFailure(%s) = %v, want %v", c, got, want)
			}
			// Wrapped the way callers wrap, the answer is the same.
			if err != nil {
				if got := breaker.IsBackendFailure(fmt.Errorf("base b: %w", err)); got != want {
					t.Fatalf("wrapped %s: %v, want %v", c, got, want)
				}
			}
			// Raised before the request left (grpc-go's local Internal for a
			// header with a control character), nothing ever counts.
			if breaker.IsBackendFailure(breaker.CallerFault(status.Error(c, "local"))) {
				t.Fatalf("a caller fault with code %s counted", c)
			}
			// And the breaker itself: five such errors in a row open it only
			// when they count; uncounted ones change no state.
			b := breaker.Standalone(breaker.Config{Name: "hop", ConsecutiveFailures: 5})
			for range 5 {
				_ = b.Run(func() error { return err })
			}
			if open := b.State() == breaker.Open; open != want {
				t.Fatalf("after five %s answers the breaker is %s", c, b.State())
			}
		})
	}
}

func TestRuleOtherErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"caller gave up", context.Canceled, false},
		{"deadline", context.DeadlineExceeded, true},
		{"driver error", errors.New("connection reset by peer"), true},
		{"caller fault", breaker.CallerFault(errors.New("header holds a control character")), false},
		{"caller fault wrapped", fmt.Errorf("call: %w", breaker.CallerFault(errors.New("x"))), false},
	}
	for _, c := range cases {
		if got := breaker.IsBackendFailure(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if breaker.CallerFault(nil) != nil {
		t.Fatal("CallerFault(nil) must be nil")
	}
	if st := status.Code(breaker.CallerFault(status.Error(codes.Internal, "x"))); st != codes.Internal {
		t.Fatalf("status.Code does not see through CallerFault: %s", st)
	}
}

// A caller's error that arrives while the breaker is half-open neither
// closes nor reopens it: the next real call decides.
func TestUncountedErrorsKeepHalfOpen(t *testing.T) {
	t.Parallel()
	b := breaker.Standalone(breaker.Config{Name: "hop", ConsecutiveFailures: 1, OpenFor: 1})
	_ = b.Run(func() error { return errBoom })
	for b.State() != breaker.HalfOpen {
		// OpenFor is 1ns: the next look sees half-open.
	}
	_ = b.Run(func() error { return status.Error(codes.InvalidArgument, "bad") })
	_ = b.Run(func() error { return breaker.CallerFault(status.Error(codes.Internal, "local")) })
	if s := b.State(); s != breaker.HalfOpen {
		t.Fatalf("caller errors changed a half-open breaker to %s", s)
	}
	if err := b.Run(func() error { return nil }); err != nil || b.State() != breaker.Closed {
		t.Fatalf("the trial slot was not freed: %v, %s", err, b.State())
	}
}
