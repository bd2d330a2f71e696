package grpcserver

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/strata-bureau/strata/pkg/origin"
)

// A call's origin comes from its metadata only when its caller may speak
// for the end user; otherwise, or when the metadata names no well-formed
// address, the client is the connection's own address and no partner.
func TestOriginBelievesMetadataOnlyFromTrustedCallers(t *testing.T) {
	t.Parallel()
	call := func(trusted bool, addr net.Addr, kv ...string) context.Context {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
		if addr != nil {
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr})
		}
		return context.WithValue(ctx, identityKey{}, callerInfo{identity: "gateway", trusted: trusted})
	}
	conn := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 4000}
	named := []string{origin.PartnerIDKey, "bank-a", origin.ClientIPKey, "203.0.113.7"}
	for name, tc := range map[string]struct {
		ctx  context.Context
		want origin.Origin
	}{
		"trusted":                  {call(true, conn, named...), origin.Origin{PartnerID: "bank-a", ClientIP: "203.0.113.7"}},
		"untrusted":                {call(false, conn, named...), origin.Origin{ClientIP: "10.1.2.3"}},
		"trusted, no address":      {call(true, conn, origin.PartnerIDKey, "bank-a"), origin.Origin{PartnerID: "bank-a", ClientIP: "10.1.2.3"}},
		"trusted, malformed":       {call(true, conn, origin.ClientIPKey, "203.0.113.7, 10.0.0.1"), origin.Origin{ClientIP: "10.1.2.3"}},
		"trusted, two addresses":   {call(true, conn, origin.ClientIPKey, "203.0.113.7", origin.ClientIPKey, "198.51.100.1"), origin.Origin{ClientIP: "10.1.2.3"}},
		"untrusted, no connection": {call(false, nil, named...), origin.Origin{}},
		"IPv6 connection":          {call(false, &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 1}), origin.Origin{ClientIP: "2001:db8::7"}},
		"outside any guarded call": {metadata.NewIncomingContext(context.Background(), metadata.Pairs(named...)), origin.Origin{}},
	} {
		if got := Origin(tc.ctx); got != tc.want {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}
