package origin_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/strata-bureau/strata/pkg/origin"
)

func TestRoundTripAndMalformedValues(t *testing.T) {
	t.Parallel()
	out := origin.Outgoing(context.Background(), origin.Origin{PartnerID: "bank-a", ClientIP: "203.0.113.7"})
	md, _ := metadata.FromOutgoingContext(out)
	in := metadata.NewIncomingContext(context.Background(), md)
	if got := origin.FromIncoming(in); got != (origin.Origin{PartnerID: "bank-a", ClientIP: "203.0.113.7"}) {
		t.Fatalf("round trip: %+v", got)
	}
	bad := metadata.NewIncomingContext(context.Background(), metadata.MD{
		origin.PartnerIDKey: {"bank a"}, origin.ClientIPKey: {"203.0.113.7", "10.0.0.1"}})
	if got := origin.FromIncoming(bad); got != (origin.Origin{}) {
		t.Fatalf("malformed or contradicting values were kept: %+v", got)
	}
	same := metadata.NewIncomingContext(context.Background(), metadata.MD{origin.PartnerIDKey: {"bank-a", "bank-a"}})
	if got := origin.FromIncoming(same); got.PartnerID != "bank-a" {
		t.Fatalf("a value repeated identically was dropped: %+v", got)
	}
	if (origin.Origin{PartnerID: "p\x00"}).Valid() || !(origin.Origin{}).Valid() {
		t.Fatal("Valid is wrong")
	}
}

// Per-address limits key an IPv6 client on its /64: rotating addresses
// within it does not buy a fresh budget; another /64, or any IPv4
// address, is its own source.
func TestSourceKeyGroupsAnIPv6SlashSixtyFour(t *testing.T) {
	t.Parallel()
	same := []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2:abcd::7", "2001:DB8:1:2::9"}
	for _, ip := range same {
		if got := origin.SourceKey(ip); got != "2001:db8:1:2::/64" {
			t.Errorf("SourceKey(%s) = %s", ip, got)
		}
	}
	for ip, want := range map[string]string{
		"2001:db8:1:3::1": "2001:db8:1:3::/64", "203.0.113.7": "203.0.113.7", "::ffff:203.0.113.7": "203.0.113.7",
		"fe80::1%eth0": "fe80::/64", "not an ip": "not an ip", "": "",
	} {
		if got := origin.SourceKey(ip); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", ip, got, want)
		}
	}
}
