package grpcapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The gateway's audit reader is taken from its metadata by pkg/origin's
// rules, and fails closed: no partner, a partner named twice differently
// or malformed, or an audit scope given twice differently, is refused; a
// malformed client address is left out. Staff identities ignore it all.
func TestViewerFromTheGatewaysMetadata(t *testing.T) {
	t.Parallel()
	a := Access{Audit: []string{"gateway", "strata-audit"}, AuditOnBehalf: []string{"gateway"}}
	read := func(id string, kv ...string) (Viewer, error) {
		return viewer(metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...)), a, id)
	}
	for name, kv := range map[string][]string{
		"no partner":        nil,
		"empty partner":     {"x-partner-id", ""},
		"two partners":      {"x-partner-id", "bank-a", "x-partner-id", "bank-b"},
		"partner too long":  {"x-partner-id", strings.Repeat("p", 129)},
		"partner not token": {"x-partner-id", "bank a"},
		"scope twice":       {"x-partner-id", "bank-a", "x-audit-scope", "own", "x-audit-scope", "all"},
	} {
		if _, err := read("gateway", kv...); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, tc := range map[string]struct {
		kv   []string
		want Viewer
	}{
		"own":            {[]string{"x-partner-id", "bank-a", "x-client-ip", "203.0.113.7"}, Viewer{Identity: "gateway", PartnerID: "bank-a", ClientIP: "203.0.113.7"}},
		"all":            {[]string{"x-partner-id", "bank-a", "x-audit-scope", "all", "x-audit-scope", "all"}, Viewer{Identity: "gateway", PartnerID: "bank-a", All: true}},
		"bad address":    {[]string{"x-partner-id", "bank-a", "x-client-ip", "not an address"}, Viewer{Identity: "gateway", PartnerID: "bank-a"}},
		"two addresses":  {[]string{"x-partner-id", "bank-a", "x-client-ip", "203.0.113.7", "x-client-ip", "10.0.0.1"}, Viewer{Identity: "gateway", PartnerID: "bank-a"}},
		"scope mistyped": {[]string{"x-partner-id", "bank-a", "x-audit-scope", "ALL"}, Viewer{Identity: "gateway", PartnerID: "bank-a"}},
	} {
		if v, err := read("gateway", tc.kv...); err != nil || v != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", name, v, err, tc.want)
		}
	}
	if v, err := read("strata-audit", "x-partner-id", "bank-a", "x-audit-scope", "own"); err != nil ||
		v != (Viewer{Identity: "strata-audit", PartnerID: "strata-audit", All: true}) {
		t.Errorf("staff: %+v, %v", v, err)
	}
}
