package breaker

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The rule every breaker in Strata follows (DESIGN.md, "Trust boundaries"):
//
// A breaker counts only failures of the backend itself. Partners are
// mutually distrusting, so nothing one caller sends may open a breaker that
// every caller shares.
//
//   - Never counted (the breaker's state does not change at all, neither as
//     a failure nor as a success):
//   - an error the caller caused: invalid input, a refused credential, a
//     missing permission, "not found", "already exists", a failed
//     precondition, throttling — as gRPC codes InvalidArgument, NotFound,
//     AlreadyExists, PermissionDenied, Unauthenticated, ResourceExhausted,
//     FailedPrecondition, Aborted, OutOfRange, Unimplemented, Canceled;
//   - DataLoss: the backend answered, and data that must be there is not
//     (audit tree hashes deleted behind its back). Cutting the hop helps
//     no one and a caller asking for the damaged range must not cut it
//     for everyone; it is an alarm for an operator, raised where it is
//     answered;
//   - an error raised before the request left this process (marked with
//     CallerFault: e.g. grpc-go refusing a header value that holds a
//     control character, or a message it cannot marshal, both of which
//     grpc-go reports as a local codes.Internal);
//   - the caller giving up (context.Canceled).
//   - Counted as a failure: the backend being unreachable or in trouble —
//     gRPC Unavailable, DeadlineExceeded, Internal, Unknown answered by
//     the backend; a deadline passing (context.DeadlineExceeded);
//     and any other error a hop's driver returns (connection refused, reset,
//     a broken pipe), unless the hop's Config.IsFailure knows it as the
//     caller's (a store's "not found" or "invalid input" sentinels).
//
// IsBackendFailure implements it; every breaker uses it unless its Config
// names a stricter IsFailure, and Config.IsFailure is always combined with
// it (an error IsBackendFailure excuses is never counted, whatever
// IsFailure says).

// callerFault marks an error as the caller's.
type callerFault struct{ err error }

func (e callerFault) Error() string { return e.err.Error() }
func (e callerFault) Unwrap() error { return e.err }

// CallerFault marks err as caused by the caller, or raised before the
// request left this process: it never counts against any breaker. errors.Is,
// errors.As and status.Code still see through it. CallerFault(nil) is nil.
func CallerFault(err error) error {
	if err == nil {
		return nil
	}
	return callerFault{err: err}
}

// IsCallerFault reports whether err was marked with CallerFault.
func IsCallerFault(err error) bool {
	var cf callerFault
	return errors.As(err, &cf)
}

// IsBackendFailure reports whether err says the backend itself failed (see
// the rule above).
func IsBackendFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || IsCallerFault(err) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return BackendCode(se.GRPCStatus().Code())
	}
	return true
}

// BackendCode reports whether a gRPC status code answered by a backend
// counts as the backend's own failure.
func BackendCode(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown:
		return true
	}
	return false
}
