package app_test

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
)

// routeScopes names, for every /v1 operation, the key scopes any one of
// which admits it. An operation missing here fails the test: a new route
// cannot ship without its scope being checked.
var routeScopes = map[string][]string{
	"create-grant": {"base-a:grant"}, "revoke-grant": {"base-a:grant"},
	"get-person": {"base-a:read"}, "list-debts": {"base-a:read"},
	"get-profile": {"base-b:read"}, "get-score": {"base-b:read"},
	"get-activity": {"base-c:read"}, "list-movements": {"base-c:read"},
	"list-access-logs": {"audit:read", "audit:own"}, "access-history": {"audit:read"}, "verify-audit-log": {"audit:read"},
	"audit-head": {"audit:read", "audit:own"}, "audit-proof": {"audit:read", "audit:own"},
	"subject-report": {"audit:read"}, "processing-records": {"audit:read"},
	"create-partner": {"admin"}, "list-partners": {"admin"}, "create-key": {"admin"}, "rotate-key": {"admin"}, "revoke-key": {"admin"},
	"bind-oauth-client": {"admin"}, "list-oauth-clients": {"admin"}, "unbind-oauth-client": {"admin"},
}

// Bodies that pass validation, so the scope check is what answers.
var routeBodies = map[string]string{
	"create-grant":      `{"cpf":"52998224725","purpose":"credit_analysis","reason":"loan application 4711","fields":["name"]}`,
	"create-partner":    `{"id":"scope-probe","name":"Scope probe"}`,
	"create-key":        `{"scopes":["base-c:read"]}`,
	"rotate-key":        `{"overlap_seconds":1}`,
	"bind-oauth-client": `{"client_id":"scope-probe-client"}`,
}

var partnerScopes = []string{"base-a:grant", "base-a:read", "base-b:read", "base-c:read", "audit:own", "audit:read"}

// checkScopesOnEveryRoute: every /v1 operation in the served OpenAPI
// document, every method, is refused 403 insufficient-scope to a key
// without any of its scopes and admitted past the scope check with one;
// admin routes refuse every partner scope; one partner cannot see or revoke
// another's grants. It runs inside the end-to-end test, on its platform
// (platforms in one test environment share database names).
func checkScopesOnEveryRoute(t *testing.T, c *client, env map[string]string) {
	t.Helper()
	admin := env["STRATA_ADMIN_KEY"]
	c.do("POST", "/v1/admin/partners", `{"id":"bank-one","name":"Bank One"}`, "X-Api-Key", admin).want(t, 201, "")
	c.do("POST", "/v1/admin/partners", `{"id":"bank-two","name":"Bank Two"}`, "X-Api-Key", admin).want(t, 201, "")
	newKey := func(partner string, scopes []string) (string, string) {
		b, _ := json.Marshal(map[string]any{"scopes": scopes, "rate_per_second": 1000, "burst": 1000})
		r := c.do("POST", "/v1/admin/partners/"+partner+"/keys", string(b), "X-Api-Key", admin).want(t, 201, "")
		return r.str("key"), r.str("key_id")
	}
	only := map[string]string{}
	for _, s := range append(slices.Clone(partnerScopes), "admin") {
		only[s], _ = newKey("bank-one", []string{s})
	}
	_, victimKeyID := newKey("bank-two", []string{"base-c:read"})

	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(c.do("GET", "/openapi.json", "").want(t, 200, "").raw), &doc); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("{cpf}", "52998224725", "{grant_id}", "00000000-0000-4000-8000-000000000000",
		"{id}", "bank-two", "{key_id}", victimKeyID, "{client_id}", "scope-probe-client")
	var seen []string
	for path, methods := range doc.Paths {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		for method, op := range methods {
			id := op.OperationID
			allowed, ok := routeScopes[id]
			if !ok {
				t.Errorf("%s %s (%s): no scope listed in routeScopes", strings.ToUpper(method), path, id)
				continue
			}
			seen = append(seen, id)
			target := fill.Replace(path)
			// The grant and credentials are well formed (so the edge lets
			// them through) and wrong (so nothing is read).
			headers := []string{"X-Strata-Grant", "sgt_unknown", "Authorization", "Basic " + b64("nobody:wrong-password")}
			if strings.Contains(id, "profile") || strings.Contains(id, "score") {
				headers[3] = "Bearer abc.def.ghi"
			}
			call := func(key string) reply {
				return c.do(strings.ToUpper(method), target, routeBodies[id], append([]string{"X-Api-Key", key}, headers...)...)
			}
			// Without any of its scopes (every other scope, admin included
			// unless the route is admin's): 403 insufficient-scope.
			for s, key := range only {
				if slices.Contains(allowed, s) {
					continue
				}
				if r := call(key); r.status != 403 || r.body["type"] != "urn:strata:problem:insufficient-scope" {
					t.Errorf("%s %s with only %s: want 403 insufficient-scope, got %d %s", method, path, s, r.status, r.raw)
				}
			}
			// With one of them: past the scope check (whatever comes next).
			for _, s := range allowed {
				if r := call(only[s]); r.body["type"] == "urn:strata:problem:insufficient-scope" {
					t.Errorf("%s %s with %s: refused for scope: %s", method, path, s, r.raw)
				}
			}
		}
	}
	for id := range routeScopes {
		if !slices.Contains(seen, id) {
			t.Errorf("operation %s is listed but not served", id)
		}
	}
	sort.Strings(seen)
	t.Logf("checked %d operations: %v", len(seen), seen)

	// One partner's grants are invisible to another: it cannot revoke
	// them (404) nor read with them.
	g := c.do("POST", "/v1/grants", routeBodies["create-grant"], "X-Api-Key", only["base-a:grant"]).want(t, 201, "")
	other, _ := newKey("bank-two", []string{"base-a:grant", "base-a:read"})
	c.do("DELETE", "/v1/grants/"+g.str("grant_id"), "", "X-Api-Key", other).want(t, 404, "not-found")
	c.do("GET", "/v1/people/52998224725", "", "X-Api-Key", other, "X-Strata-Grant", g.str("token")).want(t, 403, "grant-wrong-partner")
}
