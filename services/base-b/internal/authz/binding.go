package authz

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/grpcserver"
	"github.com/strata-bureau/strata/pkg/origin"
)

// MDPartnerClients lists, comma-separated, the OAuth2 client ids bound to
// the calling partner (the gateway's oauth-clients table); the gateway
// sends it with every Base B call, beside the partner's id (pkg/origin).
const MDPartnerClients = "x-partner-oauth-clients"

// partnerFacing names the RPCs partners reach through the gateway; they
// always need a partner context. Writes and the export are internal.
func partnerFacing(method string) bool {
	return strings.HasSuffix(method, "/GetProfile") || strings.HasSuffix(method, "/GetScore")
}

// bind enforces partner binding on calls made for a partner: those of a
// caller trusted to speak for partners (mTLS identity in
// BASEB_CLIENTS_TRUSTED: the gateway). Such a call must name the partner
// whose API key made it (x-partner-id) on a partner-facing RPC, or whenever
// it names one, and the token's client must be one of the clients bound
// to that partner: a token obtained by one partner's client is worthless
// with another partner's key. Other callers are internal services admitted
// by their own identity (BASEB_CLIENTS_READ …), never partners; whatever
// partner metadata they send is ignored.
func bind(ctx context.Context, md metadata.MD, method string, p Principal) (Principal, error) {
	if !grpcserver.MetadataTrusted(ctx) {
		return p, nil
	}
	partner := origin.FromIncoming(ctx).PartnerID
	if partner == "" && len(md.Get(origin.PartnerIDKey)) == 0 && !partnerFacing(method) {
		return p, nil
	}
	if partner == "" {
		return p, status.Error(codes.PermissionDenied, "a partner call must name the partner whose API key made it (x-partner-id)")
	}
	var bound []string
	for _, v := range md.Get(MDPartnerClients) {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				bound = append(bound, c)
			}
		}
	}
	if p.ClientID == "" || !slices.Contains(bound, p.ClientID) {
		return p, status.Error(codes.PermissionDenied, "the token's OAuth2 client is not bound to the partner whose API key made the call")
	}
	p.PartnerID = partner
	return p, nil
}
