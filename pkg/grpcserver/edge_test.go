package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/grpcserver"
)

// Every base answers its store's failures alike: an open breaker as the
// store being unavailable, never Internal; the store's cause never in
// the message; a refused input with its own text; a passed deadline as
// DeadlineExceeded (by Mask); anything else left for Mask to log.
func TestStoreErrorsAnswerEveryBaseAlike(t *testing.T) {
	t.Parallel()
	notFound, invalid, unavailable := errors.New("not found"), errors.New("invalid input"), errors.New("store unavailable")
	e := grpcserver.StoreErrors{NotFound: notFound, Invalid: invalid, Unavailable: unavailable,
		NotFoundMessage: "no such thing", UnavailableMessage: "thing store unavailable"}
	bug := errors.New("nil map")
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{fmt.Errorf("read: %w", notFound), codes.NotFound, "no such thing"},
		{fmt.Errorf("%w: reason too short", invalid), codes.InvalidArgument, "invalid input: reason too short"},
		{fmt.Errorf("%w: dial tcp 10.0.0.5:27017: connection refused", unavailable), codes.Unavailable, "thing store unavailable"},
		{fmt.Errorf("base-x->mongo: %w", breaker.ErrOpen), codes.Unavailable, "thing store unavailable"},
		{fmt.Errorf("find: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "deadline exceeded"},
		{bug, codes.Internal, "internal error"},
	} {
		st := status.Convert(grpcserver.Mask(context.Background(), slog.New(slog.DiscardHandler), "/x.v1.S/M", e.Status(tc.err)))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%v: %v %q, want %v %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
	if e.Status(bug) != bug {
		t.Error("an unexpected error was not left as it is")
	}
}
