package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// bootstrapKey is a key bootstrap makes and the variable it is written to.
type bootstrapKey struct {
	partner, env string
	scopes       []apikey.Scope
}

// bootstrapKeys: the operators' admin key; the demo partner's, with every
// partner scope (audit:own: partners see only their own audit entries);
// the auditors', whose audit:read shows every partner's entries.
func bootstrapKeys() []bootstrapKey {
	return []bootstrapKey{
		{partner: "strata-admin", env: "STRATA_ADMIN_KEY", scopes: []apikey.Scope{apikey.ScopeAdmin}},
		{partner: "demo-bank", env: "STRATA_API_KEY", scopes: apikey.PartnerScopes()},
		{partner: "bureau-audit", env: "STRATA_AUDITOR_KEY", scopes: []apikey.Scope{apikey.ScopeAuditRead}},
	}
}

// bootstrap creates, on first start, an admin key, a demo partner with a
// key holding every partner scope (audit:own, not audit:read), an auditor
// key (audit:read) for the bureau's compliance staff, and a demo OAuth client, and writes
// their secrets once to path (0600) in shell syntax. Later starts find the
// file and change nothing.
func bootstrap(ctx context.Context, st *store.Store, pepper []byte, path string, cfg *Config) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	newKey := func(partner string, scopes ...apikey.Scope) (string, error) {
		id, full := apikey.New()
		k, _ := apikey.Parse(full)
		return full, st.CreateKey(ctx, store.Key{ID: id, PartnerID: partner, SecretHash: apikey.Hash(pepper, k.Secret), Scopes: apikey.Strings(scopes),
			RatePerSec: cfg.RatePerSec, Burst: cfg.Burst, DailyQuota: cfg.DailyQuota})
	}
	for _, p := range [][2]string{{"strata-admin", "Strata operators"}, {"demo-bank", "Demo Bank S.A."}, {"bureau-audit", "Bureau compliance (auditors)"}} {
		if _, err := st.CreatePartner(ctx, p[0], p[1]); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	var vars [][2]string
	for _, k := range bootstrapKeys() {
		full, err := newKey(k.partner, k.scopes...)
		if err != nil {
			return err
		}
		vars = append(vars, [2]string{k.env, full})
	}
	secret := apikey.NewSecret()
	if err := st.UpsertOAuthClient(ctx, store.OAuthClient{ID: "demo-bank", SecretHash: apikey.Hash(pepper, secret),
		Scopes: []string{"base-b:read", "base-b:write", "base-b:export"}}); err != nil {
		return err
	}
	// A built-in client is bound to its partner when it is created.
	// (Already bound when another launcher data directory bootstrapped
	// this database before.)
	if _, err := st.BindOAuthClient(ctx, "demo-bank", "demo-bank"); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	var b strings.Builder
	b.WriteString("# Written once by the gateway's bootstrap: these secrets are not stored anywhere else.\n")
	for _, kv := range append(vars, [2]string{"STRATA_OAUTH_CLIENT_ID", "demo-bank"}, [2]string{"STRATA_OAUTH_CLIENT_SECRET", secret}) {
		fmt.Fprintf(&b, "export %s='%s'\n", kv[0], kv[1])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
