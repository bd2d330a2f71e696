package grpcapi

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// Base C answers its store's failures as the other bases do
// (grpcserver.StoreErrors): ListMovements behind an open Mongo breaker is
// Unavailable (the gateway's 503), not Internal (a 500), and a passed
// deadline is left to grpcserver.Mask (DeadlineExceeded). Its own
// refusals keep their codes.
func TestStatusOfBaseCsErrors(t *testing.T) {
	t.Parallel()
	open := status.Convert(toStatus(fmt.Errorf("base-c->mongo: %w", breaker.ErrOpen)))
	if open.Code() != codes.Unavailable || open.Message() != "activity store unavailable" {
		t.Errorf("open breaker: %v", open)
	}
	if err := toStatus(fmt.Errorf("find: %w", context.DeadlineExceeded)); err.Error() != "find: context deadline exceeded" {
		t.Errorf("passed deadline: %v", err)
	}
	for err, want := range map[error]codes.Code{
		domain.ErrUnauthorized: codes.Unauthenticated, domain.ErrThrottled: codes.ResourceExhausted,
		domain.ErrOverloaded: codes.ResourceExhausted, domain.ErrExists: codes.AlreadyExists, domain.ErrNotFound: codes.NotFound,
	} {
		if got := status.Code(toStatus(err)); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
}
