package grpcserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
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

// A subject report (or any action guarded so) is refused to a caller
// without a verified certificate or with an identity not allowed, and
// tells an allowed caller who it is.
func TestRequireIdentity(t *testing.T) {
	t.Parallel()
	as := func(cn string) context.Context {
		state := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
	}
	allowed := []string{"gateway"}
	if id, err := grpcserver.RequireIdentity(as("gateway"), allowed, "read subject reports"); err != nil || id != "gateway" {
		t.Fatalf("gateway: %q, %v", id, err)
	}
	for name, ctx := range map[string]context.Context{"stranger": as("someone"), "no certificate": context.Background()} {
		id, err := grpcserver.RequireIdentity(ctx, allowed, "read subject reports")
		if st := status.Convert(err); id != "" || st.Code() != codes.PermissionDenied || st.Message() != "this identity may not read subject reports" {
			t.Errorf("%s: %q, %v", name, id, err)
		}
	}
}
