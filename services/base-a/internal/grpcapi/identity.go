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
	"github.com/strata-bureau/strata/pkg/origin"
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

// Metadata keys of Base A's own, besides the origin (pkg/origin:
// x-partner-id, x-client-ip) the gateway sets on calls it makes for a
// partner's key.
const (
	MDAuditScope = "x-audit-scope"
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
// on-behalf identity, the metadata it sent (pkg/origin's rules: a client
// address that is malformed or given twice differently is left out). It
// fails closed: a partner named twice differently, malformed or not at
// all, or an audit scope given twice differently, is refused.
func viewer(ctx context.Context, a Access, id string) (Viewer, error) {
	v := Viewer{Identity: id, PartnerID: id, All: true}
	if !slices.Contains(a.AuditOnBehalf, id) {
		return v, nil
	}
	o := origin.FromIncoming(ctx)
	if o.PartnerID == "" {
		return v, status.Error(codes.PermissionDenied, "the caller's partner (x-partner-id) is required, once")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	scope, ok := origin.One(md, MDAuditScope)
	if !ok {
		return v, status.Error(codes.PermissionDenied, "x-audit-scope given twice")
	}
	v.PartnerID, v.ClientIP, v.All = o.PartnerID, o.ClientIP, scope == "all"
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
