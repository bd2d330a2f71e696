package grpcapi

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/grpcserver"
)

// Access says which mTLS identities may call which service.
type Access struct {
	People []string // PeopleService reads and grants (the gateway)
	Audit  []string // AuditService (the gateway, strata-audit)
	Write  []string // UpsertPerson, RecordDebt (named internal loaders)
	// AuditOnBehalf are the Audit identities that act for a partner's API
	// key (the gateway): they must name the partner (x-partner-id) and
	// hold every-partner access only when they say so (x-audit-scope: all).
	// Any other Audit identity is bureau staff (strata-audit).
	AuditOnBehalf []string
}

// Metadata keys the gateway sets on calls it makes for a partner's key.
const (
	MDPartnerID  = "x-partner-id"
	MDAuditScope = "x-audit-scope"
	MDClientIP   = "x-client-ip"
	// MDAuditEntry (response header) names the audit entry of a read.
	MDAuditEntry = "strata-audit-entry"
)

type viewerKey struct{}

// publicAudit are the audit methods that serve public material only.
var publicAudit = map[string]bool{
	"/basea.v1.AuditService/GetHead":        true,
	"/basea.v1.AuditService/GetConsistency": true,
}

// Viewer is who reads the audit log.
type Viewer struct {
	Identity  string
	PartnerID string // the partner of the key, or the staff identity
	ClientIP  string
	// All is true for bureau staff and regulators (audit:read); false
	// restricts every read to PartnerID's own entries (audit:own).
	All bool
}

// viewer derives the audit reader from the verified identity and, for an
// on-behalf identity, the metadata it sent. It fails closed: a partner
// named twice differently, or not at all, is refused.
func viewer(ctx context.Context, a Access, id string) (Viewer, error) {
	v := Viewer{Identity: id, PartnerID: id, All: true}
	if !slices.Contains(a.AuditOnBehalf, id) {
		return v, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	one := func(k string) (string, bool) {
		vs := md.Get(k)
		for _, x := range vs[min(1, len(vs)):] {
			if x != vs[0] {
				return "", false
			}
		}
		if len(vs) == 0 {
			return "", true
		}
		return vs[0], true
	}
	partner, ok := one(MDPartnerID)
	if !ok || partner == "" || len(partner) > 128 {
		return v, status.Error(codes.PermissionDenied, "the caller's partner (x-partner-id) is required, once")
	}
	scope, ok := one(MDAuditScope)
	if !ok {
		return v, status.Error(codes.PermissionDenied, "x-audit-scope given twice")
	}
	ip, _ := one(MDClientIP)
	if len(ip) > 64 {
		ip = ip[:64]
	}
	v.PartnerID, v.ClientIP, v.All = partner, ip, scope == "all"
	return v, nil
}

// ViewerFrom returns the audit reader the interceptor admitted.
func ViewerFrom(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(viewerKey{}).(Viewer)
	return v, ok
}

var writeMethods = []string{"/basea.v1.PeopleService/UpsertPerson", "/basea.v1.PeopleService/RecordDebt"}

// IdentityInterceptor admits only verified client certificates whose
// identity is allowed for the method (pkg/grpcserver.Access, as Base B and
// C do), puts the identity in the context and, for AuditService, the
// audit reader.
func IdentityInterceptor(a Access) grpc.UnaryServerInterceptor {
	allow := grpcserver.Access{Guard: "/basea.v1.", Groups: []grpcserver.Group{
		{Name: "audit", Methods: []string{"/basea.v1.AuditService/"}, Allowed: a.Audit},
		{Name: "write", Methods: writeMethods, Allowed: a.Write},
		{Name: "people", Allowed: a.People},
	}}.Unary()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return allow(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			if strings.HasPrefix(info.FullMethod, "/basea.v1.AuditService/") {
				// Public material (heads, consistency proofs) needs no
				// reader; everything else refuses without one.
				v, err := viewer(ctx, a, grpcserver.Identity(ctx))
				if err != nil && !publicAudit[info.FullMethod] {
					return nil, err
				}
				if err == nil {
					ctx = context.WithValue(ctx, viewerKey{}, v)
				}
			}
			return handler(ctx, req)
		})
	}
}
