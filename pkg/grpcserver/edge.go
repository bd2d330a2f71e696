package grpcserver

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// RequireIdentity answers PermissionDenied unless the caller's mTLS
// identity is one of allowed; what names the refused action ("read
// subject reports").
func RequireIdentity(ctx context.Context, allowed []string, what string) error {
	if id, ok := PeerIdentity(ctx); !ok || !slices.Contains(allowed, id) {
		return status.Error(codes.PermissionDenied, "this identity may not "+what)
	}
	return nil
}
