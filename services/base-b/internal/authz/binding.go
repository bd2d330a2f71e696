package authz

import (
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Metadata the gateway sends with every call it makes for a partner.
const (
	// MDPartnerID is the partner whose API key made the call.
	MDPartnerID = "x-partner-id"
	// MDPartnerClients lists, comma-separated, the OAuth2 client ids bound
	// to that partner (the gateway's oauth-clients table).
	MDPartnerClients = "x-partner-oauth-clients"
)

// partnerFacing names the RPCs partners reach through the gateway; they
// always need a partner context. Writes and the export are internal.
func partnerFacing(method string) bool {
	return strings.HasSuffix(method, "/GetProfile") || strings.HasSuffix(method, "/GetScore")
}

// bind enforces partner binding: on a partner-facing RPC, or on any call
// that names a partner, the token's client must be one of the clients
// bound to the partner whose API key made the call. A token obtained by
// one partner's client is worthless with another partner's key.
func bind(md metadata.MD, method string, p Principal) (Principal, error) {
	ids := md.Get(MDPartnerID)
	if len(ids) == 0 && !partnerFacing(method) {
		return p, nil
	}
	if len(ids) != 1 || ids[0] == "" {
		return p, status.Error(codes.PermissionDenied, "this call needs the calling partner (x-partner-id): partners reach Base B through the gateway")
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
	p.PartnerID = ids[0]
	return p, nil
}
