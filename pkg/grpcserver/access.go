package grpcserver

import (
	"context"
	"net"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/pkg/pki"
)

// Access is a service's allow-list of mTLS caller identities (the Common
// Name of a verified client certificate) per method group. Methods under
// Guard ("/baseb.v1.") must match a group; anything else (health,
// reflection) passes without an identity.
type Access struct {
	// Guard is the prefix of the guarded methods.
	Guard string
	// Groups are checked in order; the first whose Methods match decides.
	Groups []Group
	// TrustMetadata lists the identities whose call metadata about the
	// end user (x-client-ip, x-partner-id) is believed; from anyone else
	// it is ignored (Origin).
	TrustMetadata []string
}

// Group is a set of methods and the identities allowed to call them.
type Group struct {
	Name string
	// Methods are full method names ("/pkg.Service/Method") or service
	// prefixes ending in "/" ("/pkg.Service/"); empty matches every method.
	Methods []string
	Allowed []string
}

func (g Group) matches(method string) bool {
	if len(g.Methods) == 0 {
		return true
	}
	for _, m := range g.Methods {
		if m == method || strings.HasSuffix(m, "/") && strings.HasPrefix(method, m) {
			return true
		}
	}
	return false
}

type identityKey struct{}

type callerInfo struct {
	identity string
	trusted  bool
}

// check admits the call or returns the status refusing it.
func (a Access) check(ctx context.Context, method string) (context.Context, error) {
	if !strings.HasPrefix(method, a.Guard) {
		return ctx, nil
	}
	id, ok := PeerIdentity(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "a verified client certificate is required")
	}
	for _, g := range a.Groups {
		if !g.matches(method) {
			continue
		}
		if !slices.Contains(g.Allowed, id) {
			return nil, status.Errorf(codes.PermissionDenied, "identity %q may not call this method", id)
		}
		return context.WithValue(ctx, identityKey{}, callerInfo{identity: id, trusted: slices.Contains(a.TrustMetadata, id)}), nil
	}
	return nil, status.Errorf(codes.PermissionDenied, "identity %q may not call this method", id)
}

// Unary enforces the allow-list on unary calls.
func (a Access) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream enforces the allow-list on streaming calls.
func (a Access) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// PeerIdentity is the identity of the call's verified client certificate.
func PeerIdentity(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", false
	}
	return pki.PeerIdentity(ti.State)
}

// Identity is the caller identity Access admitted (empty outside a
// guarded call).
func Identity(ctx context.Context) string {
	c, _ := ctx.Value(identityKey{}).(callerInfo)
	return c.identity
}

// MetadataTrusted reports whether the caller may speak for the end user
// in metadata (x-client-ip, x-partner-id): only identities listed in
// Access.TrustMetadata may.
func MetadataTrusted(ctx context.Context) bool {
	c, _ := ctx.Value(identityKey{}).(callerInfo)
	return c.trusted
}

// Origin is whom the call comes from, by one rule for every base: the
// partner and client address in the call's metadata (pkg/origin), believed
// only from a caller that may speak for the end user (MetadataTrusted);
// the client address is otherwise, or when the metadata names none that
// is well formed, the address of the connection itself.
func Origin(ctx context.Context) origin.Origin {
	var o origin.Origin
	if MetadataTrusted(ctx) {
		o = origin.FromIncoming(ctx)
	}
	if o.ClientIP == "" {
		o.ClientIP = peerHost(ctx)
	}
	return o
}

// peerHost is the IP address of the call's connection ("" if none).
func peerHost(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			return host
		}
	}
	return ""
}

// List splits a comma-separated configuration value into identities.
func List(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
