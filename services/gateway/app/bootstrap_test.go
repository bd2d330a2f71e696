package app

import (
	"slices"
	"testing"

	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
)

// The bootstrap keys hold only known scopes, together every scope, and
// the demo partner's key every partner scope but neither the auditors'
// (audit:read) nor the operators' (admin).
func TestBootstrapKeysUseTheScopeConstants(t *testing.T) {
	t.Parallel()
	var union []apikey.Scope
	for _, k := range bootstrapKeys() {
		for _, s := range k.scopes {
			if !s.Known() {
				t.Errorf("%s: unknown scope %q", k.partner, s)
			}
			if !slices.Contains(union, s) {
				union = append(union, s)
			}
		}
		if k.partner == "demo-bank" && (slices.Contains(k.scopes, apikey.ScopeAuditRead) || slices.Contains(k.scopes, apikey.ScopeAdmin)) {
			t.Errorf("the demo partner's key holds %v", k.scopes)
		}
	}
	if len(union) != len(apikey.Scopes()) {
		t.Errorf("bootstrap keys hold %v, want every scope %v", union, apikey.Scopes())
	}
}
