package apikey

import "slices"

// Scope is a permission an API key holds. These constants are the one
// place a scope is spelled: the OpenAPI enum of POST
// /v1/admin/partners/{id}/keys, the handlers' checks and the bootstrap keys
// all use them.
type Scope string

// The scopes a key may hold. ScopeAuditRead (every partner's entries,
// verification, subject reports) is for bureau staff and regulators;
// ScopeAuditOwn shows a partner its own entries.
const (
	ScopeBaseAGrant Scope = "base-a:grant"
	ScopeBaseARead  Scope = "base-a:read"
	ScopeBaseBRead  Scope = "base-b:read"
	ScopeBaseCRead  Scope = "base-c:read"
	ScopeAuditOwn   Scope = "audit:own"
	ScopeAuditRead  Scope = "audit:read"
	ScopeAdmin      Scope = "admin"
)

// Scopes lists every scope, in the order the OpenAPI document shows them.
func Scopes() []Scope {
	return []Scope{ScopeBaseAGrant, ScopeBaseARead, ScopeBaseBRead, ScopeBaseCRead, ScopeAuditOwn, ScopeAuditRead, ScopeAdmin}
}

// PartnerScopes are the scopes a partner institution's key may usefully
// hold: every scope but the bureau's own (audit:read, admin).
func PartnerScopes() []Scope {
	return slices.DeleteFunc(Scopes(), func(s Scope) bool { return s == ScopeAuditRead || s == ScopeAdmin })
}

// Known reports whether s names a scope.
func (s Scope) Known() bool { return slices.Contains(Scopes(), s) }

// In reports whether held (a stored key's scopes) includes s.
func (s Scope) In(held []string) bool { return slices.Contains(held, string(s)) }

// Strings converts scopes to the strings a key record stores.
func Strings(ss []Scope) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
