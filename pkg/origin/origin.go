// Package origin names, once, the gRPC metadata in which the gateway tells
// every base whom a call comes from: the partner (its id) and the client
// address the gateway determined (from the connection, or from
// X-Forwarded-For behind a trusted proxy). Bases key their per-source
// limits on both (e.g. Base C's failed-password throttling), record them
// (audit, last query) and bind credentials to partners (Base B's OAuth
// clients). A base should trust this metadata only from callers it
// authenticates as the gateway (mTLS identity); FromIncoming only checks
// that the values are well formed.
package origin

import (
	"context"
	"net/netip"

	"google.golang.org/grpc/metadata"

	"github.com/strata-bureau/strata/pkg/input"
)

// Metadata keys.
const (
	// PartnerIDKey carries the calling partner's id.
	PartnerIDKey = "x-partner-id"
	// ClientIPKey carries the client's IP address as the gateway saw it.
	ClientIPKey = "x-client-ip"
)

// MaxPartnerID is the longest partner id accepted.
const MaxPartnerID = 128

// Origin is who a call comes from.
type Origin struct {
	PartnerID string
	ClientIP  string
}

// Valid reports whether both values are well formed (either may be empty).
func (o Origin) Valid() bool {
	return (o.PartnerID == "" || input.Token(o.PartnerID, MaxPartnerID, false) == nil) &&
		(o.ClientIP == "" || input.IP(o.ClientIP) == nil)
}

// Outgoing adds o to ctx's outgoing metadata (empty values are left out).
func Outgoing(ctx context.Context, o Origin) context.Context {
	kv := make([]string, 0, 4)
	if o.PartnerID != "" {
		kv = append(kv, PartnerIDKey, o.PartnerID)
	}
	if o.ClientIP != "" {
		kv = append(kv, ClientIPKey, o.ClientIP)
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// One is the value of key in md, by the rule every base reads the
// gateway's metadata with: a key given more than once must repeat one
// value (ok is false, and v empty, when the values differ, so that nobody
// can slip a second value past a check of the first). A key that is
// absent is "" and ok.
func One(md metadata.MD, key string) (v string, ok bool) {
	vs := md.Get(key)
	if len(vs) == 0 {
		return "", true
	}
	for _, x := range vs[1:] {
		if x != vs[0] {
			return "", false
		}
	}
	return vs[0], true
}

// FromIncoming reads the origin from an incoming call's metadata. A value
// that is missing, malformed or given twice differently is returned empty.
// Whether to believe it is the caller's decision (grpcserver.Origin:
// only from identities trusted with metadata, else the connection).
func FromIncoming(ctx context.Context) Origin {
	md, _ := metadata.FromIncomingContext(ctx)
	var o Origin
	o.PartnerID, _ = One(md, PartnerIDKey)
	o.ClientIP, _ = One(md, ClientIPKey)
	if o.PartnerID != "" && input.Token(o.PartnerID, MaxPartnerID, false) != nil {
		o.PartnerID = ""
	}
	if o.ClientIP != "" && input.IP(o.ClientIP) != nil {
		o.ClientIP = ""
	}
	return o
}

// PartnerOf is the partner id in ctx's outgoing metadata ("" if none): the
// key a client-side per-partner limit uses.
func PartnerOf(ctx context.Context) string {
	md, _ := metadata.FromOutgoingContext(ctx)
	if v := md.Get(PartnerIDKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

// SourceKey is the key per-address limits count a client address under:
// an IPv4 address as it is (IPv4-mapped IPv6 too), an IPv6 address as its
// /64 network, which one subscriber usually holds whole — otherwise a
// client rotating through its own /64 would get a fresh budget with every
// address. Anything that is not an IP address is returned unchanged.
func SourceKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
