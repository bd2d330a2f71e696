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

// A key given more than once is believed only when every value is the
// same; an absent key is empty, not refused.
func TestOneRefusesDifferingRepeats(t *testing.T) {
	t.Parallel()
	md := metadata.MD{"a": {"x"}, "b": {"x", "x"}, "c": {"x", "y"}, "d": {"", "x"}}
	for k, want := range map[string]struct {
		v  string
		ok bool
	}{"a": {"x", true}, "b": {"x", true}, "c": {"", false}, "d": {"", false}, "absent": {"", true}} {
		if v, ok := origin.One(md, k); v != want.v || ok != want.ok {
			t.Errorf("One(%s) = %q, %v; want %q, %v", k, v, ok, want.v, want.ok)
		}
	}
}

// Whatever the metadata holds, FromIncoming returns only well-formed
// values, each one that every copy of its key agreed on.
func FuzzFromIncoming(f *testing.F) {
	f.Add("bank-a", "bank-a", "203.0.113.7", "", true)
	f.Add("bank-a", "bank-b", "2001:db8::1", "2001:db8::1", false)
	f.Add("bank a", "", "203.0.113.7\x00", "10.0.0.1", true)
	f.Fuzz(func(t *testing.T, p1, p2, ip1, ip2 string, twice bool) {
		md := metadata.MD{}
		for _, kv := range [][2]string{{origin.PartnerIDKey, p1}, {origin.PartnerIDKey, p2}, {origin.ClientIPKey, ip1}, {origin.ClientIPKey, ip2}} {
			if kv[1] != "" || twice {
				md.Append(kv[0], kv[1])
			}
		}
		got := origin.FromIncoming(metadata.NewIncomingContext(context.Background(), md))
		if !got.Valid() {
			t.Fatalf("malformed origin returned: %+v", got)
		}
		for k, v := range map[string]string{origin.PartnerIDKey: got.PartnerID, origin.ClientIPKey: got.ClientIP} {
			if v == "" {
				continue
			}
			for _, x := range md.Get(k) {
				if x != v {
					t.Fatalf("%s %q returned although %q was given too", k, v, x)
				}
			}
		}
	})
}
