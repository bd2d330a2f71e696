package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// update rewrites the committed documents the tests compare against
// (services/gateway/openapi.json, testdata/*.golden.json; see README,
// Public API):
//
//	go test ./internal/api -run 'TestOpenAPI|TestRouteShapes|TestAdminRouteShapes' -update
var update = flag.Bool("update", false, "rewrite the committed OpenAPI document and contract goldens")

// route is one call of a public operation that a base answers.
type route struct {
	method, path, body string
	headers            []string // name, value, ...
	scope              []apikey.Scope
}

const (
	bearer  = "Bearer eyJhbGciOi.eyJzdWIi.sig"
	basic   = "Basic ZGVtbzpzM2NyZXQ=" // demo:s3cret
	grant   = "sgt_token"
	cpfText = "529.982.247-25"
)

// routes: every /v1 operation the three bases answer (admin operations
// use the gateway's own store and are proven end to end).
var routes = map[string]route{
	"create-grant": {method: "POST", path: "/v1/grants", scope: []apikey.Scope{apikey.ScopeBaseAGrant},
		body: `{"cpf":"` + cpfText + `","purpose":"credit_analysis","reason":"loan application 4711","fields":["name","debts"]}`},
	"revoke-grant":   {method: "DELETE", path: "/v1/grants/g-1", scope: []apikey.Scope{apikey.ScopeBaseAGrant}},
	"get-person":     {method: "GET", path: "/v1/people/" + cpfText, headers: []string{"X-Strata-Grant", grant}, scope: []apikey.Scope{apikey.ScopeBaseARead}},
	"list-debts":     {method: "GET", path: "/v1/people/52998224725/debts", headers: []string{"X-Strata-Grant", grant}, scope: []apikey.Scope{apikey.ScopeBaseARead}},
	"get-profile":    {method: "GET", path: "/v1/profiles/52998224725", headers: []string{"Authorization", bearer}, scope: []apikey.Scope{apikey.ScopeBaseBRead}},
	"get-score":      {method: "GET", path: "/v1/profiles/52998224725/score", headers: []string{"Authorization", bearer}, scope: []apikey.Scope{apikey.ScopeBaseBRead}},
	"get-activity":   {method: "GET", path: "/v1/activity/52998224725", headers: []string{"Authorization", basic}, scope: []apikey.Scope{apikey.ScopeBaseCRead}},
	"list-movements": {method: "GET", path: "/v1/activity/52998224725/movements?limit=2&from=2026-01-01T00:00:00Z", headers: []string{"Authorization", basic}, scope: []apikey.Scope{apikey.ScopeBaseCRead}},
	"list-access-logs": {method: "GET", path: "/v1/audit/access-logs?cpf=52998224725&purpose=credit_analysis&outcome=denied_wrong_field",
		scope: []apikey.Scope{apikey.ScopeAuditRead, apikey.ScopeAuditOwn}},
	"access-history":     {method: "GET", path: "/v1/audit/access-history/52998224725", scope: []apikey.Scope{apikey.ScopeAuditRead}},
	"verify-audit-log":   {method: "POST", path: "/v1/audit/verify", scope: []apikey.Scope{apikey.ScopeAuditRead}},
	"subject-report":     {method: "GET", path: "/v1/audit/subject-report/52998224725", scope: []apikey.Scope{apikey.ScopeAuditRead}},
	"processing-records": {method: "GET", path: "/v1/audit/processing-records", scope: []apikey.Scope{apikey.ScopeAuditRead}},
	"audit-head":         {method: "GET", path: "/v1/audit/head", scope: []apikey.Scope{apikey.ScopeAuditRead, apikey.ScopeAuditOwn}},
	"audit-proof":        {method: "GET", path: "/v1/audit/entries/e-1/proof", scope: []apikey.Scope{apikey.ScopeAuditRead, apikey.ScopeAuditOwn}},
}

// answer is what a partner sees: status, the headers that carry meaning,
// and the body.
type answer struct {
	Status     int             `json:"status"`
	AuditEntry string          `json:"strata_audit_entry,omitempty"`
	RetryAfter string          `json:"retry_after,omitempty"`
	Type       string          `json:"content_type"`
	Body       json.RawMessage `json:"body,omitempty"`
}

// operations are the served document's operations: id → tags.
func (c *contract) operations(t *testing.T) map[string][]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Tags        []string `json:"tags"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(c.do(t, "GET", "/openapi.json", "").Body, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, ops := range doc.Paths {
		for _, op := range ops {
			out[op.OperationID] = op.Tags
		}
	}
	return out
}

func (c *contract) do(t *testing.T, method, path, body string, headers ...string) answer {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "203.0.113.7:5555"
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	c.handler.ServeHTTP(w, r)
	a := answer{Status: w.Code, AuditEntry: w.Header().Get("Strata-Audit-Entry"), RetryAfter: w.Header().Get("Retry-After"),
		Type: w.Header().Get("Content-Type")}
	if b := bytes.TrimSpace(w.Body.Bytes()); len(b) > 0 {
		if !json.Valid(b) {
			t.Fatalf("%s %s: body is not JSON: %s", method, path, b)
		}
		a.Body = b
	}
	return a
}

func (c *contract) call(t *testing.T, id string) answer {
	t.Helper()
	r := routes[id]
	return c.do(t, r.method, r.path, r.body, r.headers...)
}

// volatile replaces the values of fields that hold the time of the
// request, so a golden can hold them.
func volatile(b json.RawMessage) json.RawMessage {
	var v map[string]any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	for _, k := range []string{"since", "generated_at"} {
		if _, ok := v[k]; ok {
			v[k] = "<now>"
		}
	}
	out, _ := json.Marshal(v)
	return out
}

// Every route answers the shape committed in testdata/contract.golden.json
// (field names, nesting, enums' spelling, empty lists as []), converted
// from fixed fake answers of the bases.
func TestRouteShapes(t *testing.T) {
	t.Parallel()
	c := newContract(t, backend.Options{})
	got := map[string]answer{}
	for id := range routes {
		a := c.call(t, id)
		if a.Status >= 300 {
			t.Errorf("%s: %d %s", id, a.Status, a.Body)
		}
		if id == "subject-report" {
			a.Body = volatile(a.Body)
		}
		got[id] = a
	}
	sameAnswers(t, filepath.Join("testdata", "contract.golden.json"), got)
}

// sameAnswers compares the answers with the golden file at path, each
// field as a partner sees it.
func sameAnswers(t *testing.T, path string, got map[string]answer) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]answer
	if err := json.Unmarshal(golden(t, path, append(b, '\n')), &want); err != nil {
		t.Fatal(err)
	}
	for id, a := range got {
		w, ok := want[id]
		if !ok {
			t.Errorf("%s: no golden answer (rerun with -update and review the diff)", id)
			continue
		}
		gb, _ := json.Marshal(a)
		wb, _ := json.Marshal(w)
		if !jsonEqual(gb, wb) {
			t.Errorf("%s answers\n%s\nthe contract says\n%s\n(a partner would see this change; if it is meant, rerun with -update)", id, gb, wb)
		}
	}
}

// golden returns the committed file at path, first rewriting it with got
// when the tests run with -update.
func golden(t *testing.T, path string, got []byte) []byte {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (write it with -update)", err)
	}
	return want
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// The contract covers every operation the served document lists whose
// answer comes from a base, and the scopes those operations need are
// every scope but admin.
func TestEveryBaseRouteIsInTheContract(t *testing.T) {
	t.Parallel()
	c := newContract(t, backend.Options{})
	var missing []string
	for id, tags := range c.operations(t) {
		if _, ok := routes[id]; !ok && !slices.Contains(tags, "Admin") {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations without a contract test: %v", missing)
	}
	var needed []apikey.Scope
	for _, r := range routes {
		for _, s := range r.scope {
			if !slices.Contains(needed, s) {
				needed = append(needed, s)
			}
		}
	}
	if want := slices.DeleteFunc(apikey.Scopes(), func(s apikey.Scope) bool { return s == apikey.ScopeAdmin }); len(needed) != len(want) {
		t.Errorf("routes need %v, want every partner and audit scope %v", needed, want)
	}
}

// A key without the route's scope gets 403 insufficient-scope, before any
// base is called; one with only that scope gets through.
func TestEveryRouteChecksItsScope(t *testing.T) {
	t.Parallel()
	c := newContract(t, backend.Options{})
	for id, r := range routes {
		var others []string
		for _, s := range apikey.Scopes() {
			if !slices.Contains(r.scope, s) {
				others = append(others, string(s))
			}
		}
		a := c.do(t, r.method, r.path, r.body, append(slices.Clone(r.headers), "X-Test-Scopes", strings.Join(others, ","))...)
		var p Problem
		_ = json.Unmarshal(a.Body, &p)
		if a.Status != http.StatusForbidden || p.Type != urn+"insufficient-scope" {
			t.Errorf("%s without %v: %d %s", id, r.scope, a.Status, a.Body)
		}
		for _, s := range r.scope {
			if a := c.do(t, r.method, r.path, r.body, append(slices.Clone(r.headers), "X-Test-Scopes", string(s))...); a.Status >= 300 {
				t.Errorf("%s with only %s: %d %s", id, s, a.Status, a.Body)
			}
		}
	}
}

func apikeyScopeStrings() []string { return apikey.Strings(apikey.Scopes()) }
