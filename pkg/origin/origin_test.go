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
