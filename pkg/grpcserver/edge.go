package grpcserver

import (
	"context"
	"errors"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/cpf"
)

// CPF parses a CPF from a request: its 11 digits, or InvalidArgument.
func CPF(s string) (string, error) {
	c, err := cpf.Parse(s)
	if err != nil {
		return "", status.Error(codes.InvalidArgument, "invalid CPF: "+err.Error())
	}
	return c.String(), nil
}

// RequireIdentity returns the caller's mTLS identity if it is one of
// allowed, and PermissionDenied otherwise; what names the refused action
// ("read subject reports").
func RequireIdentity(ctx context.Context, allowed []string, what string) (string, error) {
	id, ok := PeerIdentity(ctx)
	if !ok || !slices.Contains(allowed, id) {
		return "", status.Error(codes.PermissionDenied, "this identity may not "+what)
	}
	return id, nil
}

// StoreErrors are a base's sentinels for the failures every store shares,
// and the messages its callers get for them. Status answers them alike in
// every base: the store unavailable or its breaker open is Unavailable
// (the gateway's 503, "retry later"), whose message never holds the cause;
// input the store refused is InvalidArgument with the error's own text
// (what was wrong, said to the caller); nothing there is NotFound.
type StoreErrors struct {
	NotFound, Invalid, Unavailable error
	// NotFoundMessage is the base's words for "no such CPF"; the gateway
	// passes it on to the partner.
	NotFoundMessage string
	// UnavailableMessage names what is unavailable.
	UnavailableMessage string
}

// Status is err's status if err is one of e's failures or an open
// breaker, and err itself otherwise, for Mask: a passed deadline is
// answered DeadlineExceeded, anything nobody expected Internal, logged.
func (e StoreErrors) Status(err error) error {
	switch {
	case errors.Is(err, e.Invalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, e.NotFound):
		return status.Error(codes.NotFound, e.NotFoundMessage)
	case errors.Is(err, breaker.ErrOpen), errors.Is(err, e.Unavailable):
		return status.Error(codes.Unavailable, e.UnavailableMessage)
	}
	return err
}
