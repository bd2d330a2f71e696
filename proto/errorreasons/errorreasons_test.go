package errorreasons

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorCarriesItsReasonThroughWrapping(t *testing.T) {
	t.Parallel()
	err := Error(codes.PermissionDenied, "grant refused: denied_expired", DomainBaseA, GrantExpired, map[string]string{MetaOutcome: "denied_expired"})
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "grant refused: denied_expired" {
		t.Fatalf("status %v", err)
	}
	info := Of(fmt.Errorf("call: %w", err))
	if info == nil || info.GetReason() != GrantExpired || info.GetDomain() != DomainBaseA || info.GetMetadata()[MetaOutcome] != "denied_expired" {
		t.Fatalf("info %v", info)
	}
	if Of(status.Error(codes.PermissionDenied, "grant refused: denied_expired")) != nil {
		t.Fatal("a bare message must carry no reason")
	}
	if Of(fmt.Errorf("plain")) != nil {
		t.Fatal("a non-status error must carry no reason")
	}
}
