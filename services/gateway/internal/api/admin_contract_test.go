package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// The admin operations and the API key check use the gateway's own
// database: these contract tests run them against a real PostgreSQL
// (pkg/testenv), through the same middleware as production.

var template = testenv.Template{Name: "gateway", Version: store.MigrationsVersion(), Migrate: store.Migrate}

// adminContract serves the admin API behind KeyAuth, with an admin key,
// a partner key that holds every partner scope (one call a while), and a
// staff key that holds every scope but admin.
type adminContract struct {
	*contract
	admin, partner, staff string
}

func newAdminContract(t *testing.T) *adminContract {
	t.Helper()
	ctx := testenv.Context(t)
	pool, err := pgxpool.New(ctx, testenv.PostgresDB(t, template))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	pepper := []byte("pepper-pepper-pepper-pepper-pepp")
	c := &adminContract{contract: &contract{}}
	logger := slog.New(slog.NewTextHandler(c.contract, nil))
	newKey := func(partner string, rate float64, burst int, scopes ...apikey.Scope) string {
		if _, err := st.CreatePartner(ctx, partner, partner); err != nil {
			t.Fatal(err)
		}
		id, full := apikey.New()
		k, _ := apikey.Parse(full)
		if err := st.CreateKey(ctx, store.Key{ID: id, PartnerID: partner, SecretHash: apikey.Hash(pepper, k.Secret), Scopes: apikey.Strings(scopes),
			RatePerSec: rate, Burst: burst, DailyQuota: 1000}); err != nil {
			t.Fatal(err)
		}
		return full
	}
	c.admin = newKey("strata-admin", 1000, 1000, apikey.ScopeAdmin)
	c.partner = newKey("demo-bank", 0.01, 1, apikey.PartnerScopes()...)
	c.staff = newKey("strata-staff", 1000, 1000, slices.DeleteFunc(apikey.Scopes(), func(s apikey.Scope) bool { return s == apikey.ScopeAdmin })...)
	mux := http.NewServeMux()
	api := NewAPI(mux)
	keys := &KeyAuth{Store: st, Pepper: pepper, Limiter: limits.New(), Logger: logger, CacheTTL: time.Second}
	bindings := &Bindings{Store: st, TTL: time.Second}
	(&Admin{Store: st, Logger: logger, Pepper: pepper, Keys: keys, Bindings: bindings, RatePerSec: 50, Burst: 100, DailyQuota: 100000}).Register(api)
	mux.HandleFunc("/", NotFound)
	c.handler = Edge(64<<10, keys.Middleware(mux))
	return c
}

// adminRoutes run in this order; {key_id} is the key the create-key call
// made.
var adminRoutes = []struct {
	id, method, path, body string
}{
	{"create-partner", "POST", "/v1/admin/partners", `{"id":"acme-bank","name":"Acme Bank"}`},
	{"create-key", "POST", "/v1/admin/partners/acme-bank/keys", `{"scopes":["base-c:read","audit:own"],"expires_in_days":30,"rate_per_second":5,"burst":10,"daily_quota":500}`},
	{"rotate-key", "POST", "/v1/admin/partners/acme-bank/keys/{key_id}/rotate", `{"overlap_seconds":60}`},
	{"revoke-key", "DELETE", "/v1/admin/partners/acme-bank/keys/{key_id}", ""},
	{"bind-oauth-client", "POST", "/v1/admin/partners/acme-bank/oauth-clients", `{"client_id":"acme-app"}`},
	{"list-oauth-clients", "GET", "/v1/admin/partners/acme-bank/oauth-clients", ""},
	{"unbind-oauth-client", "DELETE", "/v1/admin/partners/acme-bank/oauth-clients/acme-app", ""},
	{"list-partners", "GET", "/v1/admin/partners", ""},
}

// stable replaces, at any depth, the values that differ from run to run
// (times, key ids and secrets) by their JSON type, so a golden holds the
// shape.
func stable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			switch k {
			case "created_at", "expires_at", "last_used_at", "revoked_at", "key", "key_id":
				x[k] = "<" + k + ">"
			default:
				x[k] = stable(e)
			}
		}
	case []any:
		for i := range x {
			x[i] = stable(x[i])
		}
	}
	return v
}

// Every admin operation answers the shape committed in
// testdata/admin.golden.json, refuses a key without the admin scope, and
// the served document lists no admin operation this test does not call.
func TestAdminRouteShapes(t *testing.T) {
	t.Parallel()
	c := newAdminContract(t)
	got := map[string]answer{}
	keyID := ""
	for _, r := range adminRoutes {
		path := strings.ReplaceAll(r.path, "{key_id}", keyID)
		wantProblem(t, r.id+" without the admin scope", c.do(t, r.method, path, r.body, "X-Api-Key", c.staff),
			403, "insufficient-scope", "this API key lacks the scope admin", "")
		a := c.do(t, r.method, path, r.body, "X-Api-Key", c.admin)
		if a.Status >= 300 {
			t.Fatalf("%s: %d %s", r.id, a.Status, a.Body)
		}
		var v any
		if len(a.Body) > 0 {
			_ = json.Unmarshal(a.Body, &v)
			if r.id == "create-key" {
				keyID = v.(map[string]any)["key_id"].(string)
			}
			a.Body, _ = json.Marshal(stable(v))
		}
		got[r.id] = a
	}
	sameAnswers(t, filepath.Join("testdata", "admin.golden.json"), got)
	for id, tags := range c.operations(t) {
		if _, ok := got[id]; slices.Contains(tags, "Admin") && !ok {
			t.Errorf("admin operation %s has no contract test", id)
		}
	}
}

// What the API key check and the admin operations refuse, exactly as a
// partner sees it.
func TestKeyAndAdminRefusals(t *testing.T) {
	t.Parallel()
	c := newAdminContract(t)
	other, _ := func() (string, string) { id, full := apikey.New(); return full, id }()
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		kind, detail, retry      string
	}{
		{"no key", "GET", "/v1/admin/partners", "", nil, 401, "missing-api-key", "send your API key in the X-Api-Key header", ""},
		{"malformed key", "GET", "/v1/admin/partners", "", []string{"X-Api-Key", "strata_live_typo"}, 401, "malformed-api-key",
			"the X-Api-Key value is not a Strata API key (check for a typo)", ""},
		{"unknown key", "GET", "/v1/admin/partners", "", []string{"X-Api-Key", other}, 401, "invalid-api-key", "the API key is not valid", ""},
		{"partner key on an admin route", "GET", "/v1/admin/partners", "", []string{"X-Api-Key", c.partner}, 403, "insufficient-scope",
			"this API key lacks the scope admin", ""},
		{"over its rate", "GET", "/v1/admin/partners", "", []string{"X-Api-Key", c.partner}, 429, "rate-limited", "rate limit of 1 requests reached", "100"},
		{"duplicate partner", "POST", "/v1/admin/partners", `{"id":"demo-bank","name":"Again"}`, []string{"X-Api-Key", c.admin}, 409, "conflict",
			"a partner with this id exists", ""},
		{"unknown scope", "POST", "/v1/admin/partners/demo-bank/keys", `{"scopes":["base-z:read"]}`, []string{"X-Api-Key", c.admin}, 400, "invalid-input",
			"validation failed", ""},
		{"unknown key to rotate", "POST", "/v1/admin/partners/demo-bank/keys/aaaaaaaaaaaa/rotate", `{}`, []string{"X-Api-Key", c.admin}, 404, "not-found",
			"no such active key for this partner", ""},
		{"unknown path", "GET", "/v1/admin/nothing", "", []string{"X-Api-Key", c.admin}, 404, "not-found", "no such endpoint; see /openapi.json", ""},
	}
	for _, tc := range cases {
		a := c.do(t, tc.method, tc.path, tc.body, tc.headers...)
		if tc.name == "unknown scope" {
			var p Problem
			_ = json.Unmarshal(a.Body, &p)
			if a.Status != 400 || p.Type != urn+"invalid-input" || len(p.Errors) == 0 || !strings.Contains(string(a.Body), "base-z:read") {
				t.Errorf("%s: %d %s", tc.name, a.Status, a.Body)
			}
			continue
		}
		wantProblem(t, tc.name, a, tc.status, tc.kind, tc.detail, tc.retry)
	}
}
