package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Admin manages partners and keys.
type Admin struct {
	Store *store.Store
	// Logger records the cause of every key store failure (answered 503).
	Logger *slog.Logger
	Pepper []byte
	Keys   *KeyAuth
	// Bindings is told when a partner's OAuth2 clients change.
	Bindings *Bindings
	// Defaults for new keys.
	RatePerSec float64
	Burst      int
	DailyQuota int64
}

// storeDown is the 503 for a key store failure, its cause logged.
func (a *Admin) storeDown(ctx context.Context, err error) error {
	return logMasked(ctx, a.Logger, unavailable("the key store"), fmt.Errorf("key store: %w", err))
}

// storeErr maps a key store error: ErrNotFound to a 404 saying ifNotFound
// and ErrConflict to a 409 saying ifConflict, where the caller expects them
// (the message is not empty); anything else is storeDown.
func (a *Admin) storeErr(ctx context.Context, err error, ifNotFound, ifConflict string) error {
	switch {
	case ifNotFound != "" && errors.Is(err, store.ErrNotFound):
		return notFound(ifNotFound)
	case ifConflict != "" && errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, "conflict", ifConflict)
	}
	return a.storeDown(ctx, err)
}

// adminOnly lets h run only for a caller whose key has the admin scope.
func adminOnly[I, O any](h func(context.Context, *I) (*O, error)) func(context.Context, *I) (*O, error) {
	return func(ctx context.Context, in *I) (*O, error) {
		if _, err := requireScope(ctx, apikey.ScopeAdmin); err != nil {
			return nil, err
		}
		return h(ctx, in)
	}
}

// Register declares the admin operations, each for the admin scope only.
func (a *Admin) Register(api huma.API) {
	op := func(id, method, path, summary string, status int) huma.Operation {
		o := operation("Admin", id, method, path, summary)
		o.DefaultStatus, o.Errors = status, []int{400, 401, 403, 404, 409, 429, 503}
		return o
	}
	register(api, a.Logger, op("create-partner", http.MethodPost, "/v1/admin/partners", "Create a partner", http.StatusCreated), adminOnly(a.createPartner))
	register(api, a.Logger, op("list-partners", http.MethodGet, "/v1/admin/partners", "List partners and their keys", http.StatusOK), adminOnly(a.listPartners))
	register(api, a.Logger, op("create-key", http.MethodPost, "/v1/admin/partners/{id}/keys", "Create an API key (its secret is shown once)", http.StatusCreated), adminOnly(a.createKey))
	register(api, a.Logger, op("rotate-key", http.MethodPost, "/v1/admin/partners/{id}/keys/{key_id}/rotate", "Rotate a key: a new key now, the old one valid for the overlap", http.StatusCreated), adminOnly(a.rotateKey))
	register(api, a.Logger, op("revoke-key", http.MethodDelete, "/v1/admin/partners/{id}/keys/{key_id}", "Revoke a key at once", http.StatusNoContent), adminOnly(a.revokeKey))
	register(api, a.Logger, op("bind-oauth-client", http.MethodPost, "/v1/admin/partners/{id}/oauth-clients",
		"Bind an OAuth2 client id (built-in or external provider) to the partner: its tokens are honoured only with this partner's keys", http.StatusCreated), adminOnly(a.bindClient))
	register(api, a.Logger, op("list-oauth-clients", http.MethodGet, "/v1/admin/partners/{id}/oauth-clients", "List the OAuth2 client ids bound to the partner", http.StatusOK), adminOnly(a.listClients))
	register(api, a.Logger, op("unbind-oauth-client", http.MethodDelete, "/v1/admin/partners/{id}/oauth-clients/{client_id}", "Unbind an OAuth2 client id", http.StatusNoContent), adminOnly(a.unbindClient))
}

// OAuthClientBody is a client id bound to a partner.
type OAuthClientBody struct {
	ClientID  string    `json:"client_id"`
	PartnerID string    `json:"partner_id"`
	CreatedAt time.Time `json:"created_at"`
}

// BindClientRequest binds a client id.
type BindClientRequest struct {
	ID   string `path:"id" maxLength:"63"`
	Body struct {
		ClientID string `json:"client_id" minLength:"1" maxLength:"255" pattern:"^[\\x21-\\x2b\\x2d-\\x7e]+$" doc:"the client id as the provider puts it in tokens (client_id, azp or sub); printable ASCII without spaces or commas"`
	}
}

// OAuthClientResponse is one binding.
type OAuthClientResponse struct{ Body OAuthClientBody }

// maxClientsPerPartner keeps the list Base B receives with every call small.
const maxClientsPerPartner = 50

func (a *Admin) bindClient(ctx context.Context, in *BindClientRequest) (*OAuthClientResponse, error) {
	existing, err := a.Store.OAuthClients(ctx, in.ID)
	if err != nil {
		return nil, a.storeDown(ctx, err)
	}
	if len(existing) >= maxClientsPerPartner && !slices.ContainsFunc(existing, func(b store.OAuthBinding) bool { return b.ClientID == in.Body.ClientID }) {
		return nil, problem(http.StatusConflict, "conflict", "a partner may have at most 50 OAuth2 clients")
	}
	b, err := a.Store.BindOAuthClient(ctx, in.ID, in.Body.ClientID)
	if err != nil {
		return nil, a.storeErr(ctx, err, "no such partner", "this client id is bound to another partner; unbind it there first")
	}
	a.Bindings.Forget(in.ID)
	return &OAuthClientResponse{Body: OAuthClientBody(b)}, nil
}

// PartnerRef names a partner.
type PartnerRef struct {
	ID string `path:"id" maxLength:"63"`
}

// OAuthClientsResponse lists a partner's client ids.
type OAuthClientsResponse struct {
	Body struct {
		OAuthClients []OAuthClientBody `json:"oauth_clients"`
	}
}

func (a *Admin) listClients(ctx context.Context, in *PartnerRef) (*OAuthClientsResponse, error) {
	bs, err := a.Store.OAuthClients(ctx, in.ID)
	if err != nil {
		return nil, a.storeDown(ctx, err)
	}
	out := &OAuthClientsResponse{}
	out.Body.OAuthClients = []OAuthClientBody{}
	for _, b := range bs {
		out.Body.OAuthClients = append(out.Body.OAuthClients, OAuthClientBody(b))
	}
	return out, nil
}

// UnbindClientRequest names a binding.
type UnbindClientRequest struct {
	ID       string `path:"id" maxLength:"63"`
	ClientID string `path:"client_id" maxLength:"255" pattern:"^[\\x21-\\x2b\\x2d-\\x7e]+$"`
}

func (a *Admin) unbindClient(ctx context.Context, in *UnbindClientRequest) (*struct{}, error) {
	if err := a.Store.UnbindOAuthClient(ctx, in.ID, in.ClientID); err != nil {
		return nil, a.storeErr(ctx, err, "this client id is not bound to this partner", "")
	}
	a.Bindings.Forget(in.ID)
	return nil, nil
}

// PartnerBody is a partner.
type PartnerBody struct {
	ID        string    `json:"id" pattern:"^[a-z0-9][a-z0-9-]{1,62}$" doc:"lower-case slug"`
	Name      string    `json:"name" minLength:"1" maxLength:"200"`
	CreatedAt time.Time `json:"created_at,omitempty" readOnly:"true"`
}

// PartnerRequest creates a partner.
type PartnerRequest struct {
	Body struct {
		ID   string `json:"id" pattern:"^[a-z0-9][a-z0-9-]{1,62}$" doc:"lower-case slug"`
		Name string `json:"name" minLength:"1" maxLength:"200"`
	}
}

// PartnerResponse is one partner.
type PartnerResponse struct{ Body PartnerBody }

func (a *Admin) createPartner(ctx context.Context, in *PartnerRequest) (*PartnerResponse, error) {
	if err := checkText("name", in.Body.Name, 200); err != nil {
		return nil, err
	}
	p, err := a.Store.CreatePartner(ctx, in.Body.ID, in.Body.Name)
	if err != nil {
		return nil, a.storeErr(ctx, err, "", "a partner with this id exists")
	}
	return &PartnerResponse{Body: PartnerBody{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt}}, nil
}

// KeyInfo describes a key without its secret.
type KeyInfo struct {
	KeyID      string     `json:"key_id"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	RatePerSec float64    `json:"rate_per_second"`
	Burst      int        `json:"burst"`
	DailyQuota int64      `json:"daily_quota"`
}

// PartnersResponse lists partners.
type PartnersResponse struct {
	Body struct {
		Partners []struct {
			PartnerBody
			Keys []KeyInfo `json:"keys"`
		} `json:"partners"`
	}
}

func keyInfo(k store.Key) KeyInfo {
	return KeyInfo{KeyID: k.ID, Scopes: k.Scopes, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt,
		CreatedAt: k.CreatedAt, RatePerSec: k.RatePerSec, Burst: k.Burst, DailyQuota: k.DailyQuota}
}

func (a *Admin) listPartners(ctx context.Context, _ *struct{}) (*PartnersResponse, error) {
	ps, err := a.Store.ListPartners(ctx)
	if err != nil {
		return nil, a.storeDown(ctx, err)
	}
	out := &PartnersResponse{}
	for _, p := range ps {
		keys, err := a.Store.ListKeys(ctx, p.ID)
		if err != nil {
			return nil, a.storeDown(ctx, err)
		}
		item := struct {
			PartnerBody
			Keys []KeyInfo `json:"keys"`
		}{PartnerBody: PartnerBody{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt}, Keys: []KeyInfo{}}
		for _, k := range keys {
			item.Keys = append(item.Keys, keyInfo(k))
		}
		out.Body.Partners = append(out.Body.Partners, item)
	}
	return out, nil
}

// ScopeName is a scope in a request: its OpenAPI enum is apikey.Scopes.
type ScopeName apikey.Scope

// Schema implements huma.SchemaProvider: a string, one of apikey.Scopes.
func (ScopeName) Schema(huma.Registry) *huma.Schema {
	s := &huma.Schema{Type: huma.TypeString}
	for _, v := range apikey.Scopes() {
		s.Enum = append(s.Enum, string(v))
	}
	return s
}

// KeyRequest creates a key.
type KeyRequest struct {
	ID   string `path:"id" pattern:"^[a-z0-9][a-z0-9-]{0,62}$"`
	Body struct {
		Scopes        []ScopeName `json:"scopes" minItems:"1" uniqueItems:"true"`
		ExpiresInDays int         `json:"expires_in_days,omitempty" minimum:"1" maximum:"730"`
		RatePerSecond float64     `json:"rate_per_second,omitempty" minimum:"0.1" maximum:"10000"`
		Burst         int         `json:"burst,omitempty" minimum:"1" maximum:"100000"`
		DailyQuota    int64       `json:"daily_quota,omitempty" minimum:"1"`
	}
}

// NewKeyResponse shows a new key once.
type NewKeyResponse struct {
	Body struct {
		KeyInfo
		Key string `json:"key" doc:"the API key; shown only in this response"`
	}
}

func (a *Admin) issue(ctx context.Context, partner, lineage string, scopes []string, expires *time.Time, rate float64, burst int, quota int64) (*NewKeyResponse, error) {
	id, full := apikey.New()
	parsed, _ := apikey.Parse(full)
	k := store.Key{ID: id, PartnerID: partner, LineageID: lineage, SecretHash: apikey.Hash(a.Pepper, parsed.Secret), Scopes: scopes,
		RatePerSec: rate, Burst: burst, DailyQuota: quota, ExpiresAt: expires}
	if err := a.Store.CreateKey(ctx, k); err != nil {
		return nil, a.storeDown(ctx, err)
	}
	created, err := a.Store.GetKey(ctx, id)
	if err != nil {
		return nil, a.storeErr(ctx, err, "no such partner", "")
	}
	out := &NewKeyResponse{}
	out.Body.KeyInfo, out.Body.Key = keyInfo(created), full
	return out, nil
}

func (a *Admin) createKey(ctx context.Context, in *KeyRequest) (*NewKeyResponse, error) {
	scopes := make([]string, len(in.Body.Scopes))
	for i, s := range in.Body.Scopes {
		if !apikey.Scope(s).Known() {
			return nil, invalid("unknown scope " + string(s))
		}
		scopes[i] = string(s)
	}
	rate, burst, quota := a.RatePerSec, a.Burst, a.DailyQuota
	if in.Body.RatePerSecond > 0 {
		rate = in.Body.RatePerSecond
	}
	if in.Body.Burst > 0 {
		burst = in.Body.Burst
	}
	if in.Body.DailyQuota > 0 {
		quota = in.Body.DailyQuota
	}
	var exp *time.Time
	if in.Body.ExpiresInDays > 0 {
		t := time.Now().Add(time.Duration(in.Body.ExpiresInDays) * 24 * time.Hour).UTC()
		exp = &t
	}
	return a.issue(ctx, in.ID, "", scopes, exp, rate, burst, quota)
}

// RotateRequest rotates a key.
type RotateRequest struct {
	ID    string `path:"id" pattern:"^[a-z0-9][a-z0-9-]{0,62}$"`
	KeyID string `path:"key_id" pattern:"^[a-z2-7]{1,32}$"`
	Body  struct {
		OverlapSeconds int `json:"overlap_seconds,omitempty" minimum:"0" maximum:"604800" doc:"how long the old key stays valid (default 3600)"`
	}
}

func (a *Admin) rotateKey(ctx context.Context, in *RotateRequest) (*NewKeyResponse, error) {
	old, err := a.Store.GetKey(ctx, in.KeyID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (old.PartnerID != in.ID || old.RevokedAt != nil)) {
		return nil, notFound("no such active key for this partner")
	}
	if err != nil {
		return nil, a.storeDown(ctx, err)
	}
	overlap := time.Hour
	if in.Body.OverlapSeconds > 0 {
		overlap = time.Duration(in.Body.OverlapSeconds) * time.Second
	}
	out, err := a.issue(ctx, old.PartnerID, old.LineageID, old.Scopes, old.ExpiresAt, old.RatePerSec, old.Burst, old.DailyQuota)
	if err != nil {
		return nil, err
	}
	if err := a.Store.SetKeyExpiry(ctx, old.PartnerID, old.ID, time.Now().Add(overlap)); err != nil {
		return nil, a.storeDown(ctx, err)
	}
	a.Keys.Forget(old.ID)
	return out, nil
}

// RevokeKeyRequest names a key.
type RevokeKeyRequest struct {
	ID    string `path:"id" pattern:"^[a-z0-9][a-z0-9-]{0,62}$"`
	KeyID string `path:"key_id" pattern:"^[a-z2-7]{1,32}$"`
}

func (a *Admin) revokeKey(ctx context.Context, in *RevokeKeyRequest) (*struct{}, error) {
	if err := a.Store.RevokeKey(ctx, in.ID, in.KeyID); err != nil {
		return nil, a.storeErr(ctx, err, "no such key for this partner", "")
	}
	a.Keys.Forget(in.KeyID)
	return nil, nil
}
