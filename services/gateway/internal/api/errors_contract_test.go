package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/proto/errorreasons"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// mapping is a base's error and the problem a partner gets for it.
type mapping struct {
	name       string
	err        error
	status     int
	kind       string // urn:strata:problem:<kind>
	detail     string // %s: the base ("base A")
	retryAfter string
	masked     bool // answered without its cause, which is logged
}

func grantRefusal(reason, outcome string) error {
	return errorreasons.Error(codes.PermissionDenied, "grant refused: "+outcome, errorreasons.DomainBaseA, reason,
		map[string]string{errorreasons.MetaOutcome: outcome})
}

// mappings: every gRPC code a base can answer, and every typed reason.
var mappings = []mapping{
	{name: "InvalidArgument", err: status.Error(codes.InvalidArgument, "invalid CPF: check digits"), status: 400, kind: "invalid-input", detail: "invalid CPF: check digits"},
	{name: "NotFound", err: status.Error(codes.NotFound, "no such CPF"), status: 404, kind: "not-found", detail: "no such CPF"},
	{name: "Unauthenticated", err: status.Error(codes.Unauthenticated, "token expired"), status: 401, kind: "backend-credential-refused",
		detail: "%s refused the credential: token expired"},
	{name: "PermissionDenied", err: status.Error(codes.PermissionDenied, "client not bound to this partner"), status: 403, kind: "backend-forbidden",
		detail: "%s refused: client not bound to this partner"},
	{name: "PermissionDenied, grant message without a reason", err: status.Error(codes.PermissionDenied, "grant refused: denied_expired"), status: 403,
		kind: "backend-forbidden", detail: "%s refused: grant refused: denied_expired"},
	{name: "PermissionDenied, a reason of another domain", err: errorreasons.Error(codes.PermissionDenied, "no", "baseb.strata", errorreasons.GrantExpired, nil),
		status: 403, kind: "backend-forbidden", detail: "%s refused: no"},
	{name: "ResourceExhausted", err: status.Error(codes.ResourceExhausted, "too many credential checks in progress; retry later"), status: 429,
		kind: "backend-throttled", detail: "%s: too many credential checks in progress; retry later", retryAfter: "30"},
	{name: "Unavailable", err: status.Error(codes.Unavailable, "base A unavailable"), status: 503, kind: "unavailable", detail: "%s is unavailable; retry later", masked: true},
	{name: "DeadlineExceeded", err: status.Error(codes.DeadlineExceeded, "deadline exceeded"), status: 503, kind: "unavailable", detail: "%s is unavailable; retry later", masked: true},
	{name: "Canceled", err: status.Error(codes.Canceled, "canceled"), status: 503, kind: "unavailable", detail: "%s is unavailable; retry later", masked: true},
	{name: "Internal", err: status.Error(codes.Internal, "secret table strata_x missing"), status: 500, kind: "internal", detail: "internal error", masked: true},
	{name: "Unknown", err: status.Error(codes.Unknown, "panic: secret"), status: 500, kind: "internal", detail: "internal error", masked: true},
	{name: "FailedPrecondition", err: status.Error(codes.FailedPrecondition, "secret precondition"), status: 500, kind: "internal", detail: "internal error", masked: true},
	{name: "AlreadyExists", err: status.Error(codes.AlreadyExists, "secret exists"), status: 500, kind: "internal", detail: "internal error", masked: true},
	{name: "Aborted", err: status.Error(codes.Aborted, "secret aborted"), status: 500, kind: "internal", detail: "internal error", masked: true},
	{name: "OutOfRange", err: status.Error(codes.OutOfRange, "secret range"), status: 500, kind: "internal", detail: "internal error", masked: true},
	{name: "Unimplemented", err: status.Error(codes.Unimplemented, "secret method"), status: 500, kind: "internal", detail: "internal error", masked: true},
	{name: "DataLoss", err: status.Error(codes.DataLoss, "secret loss"), status: 500, kind: "internal", detail: "internal error", masked: true},
}

// grantMappings: Base A's typed grant refusals (on its routes only).
func grantMappings() []mapping {
	var out []mapping
	for _, g := range [][3]string{ // reason, the audit outcome, the problem
		{errorreasons.GrantUnknown, "denied_unknown_grant", "grant-unknown-grant"},
		{errorreasons.GrantExpired, "denied_expired", "grant-expired"},
		{errorreasons.GrantUsedUp, "denied_used_up", "grant-used-up"},
		{errorreasons.GrantRevoked, "denied_revoked", "grant-revoked"},
		{errorreasons.GrantWrongCPF, "denied_wrong_cpf", "grant-wrong-cpf"},
		{errorreasons.GrantWrongField, "denied_wrong_field", "grant-wrong-field"},
		{errorreasons.GrantWrongPartner, "denied_wrong_partner", "grant-wrong-partner"},
	} {
		out = append(out, mapping{name: g[0], err: grantRefusal(g[0], g[1]), status: 403, kind: g[2],
			detail: "the grant does not allow this read (" + g[1] + ")"})
	}
	return out
}

// wantProblem checks a's problem body, exactly: the partners' contract.
func wantProblem(t *testing.T, what string, a answer, status int, kind, detail, retryAfter string) {
	t.Helper()
	want, _ := json.Marshal(problem(status, kind, detail))
	if a.Status != status || !jsonEqual(a.Body, want) || a.Type != "application/problem+json" || a.RetryAfter != retryAfter {
		t.Errorf("%s: got %d %s (%s, Retry-After %q), want %d %s (Retry-After %q)", what, a.Status, a.Body, a.Type, a.RetryAfter, status, want, retryAfter)
	}
}

// Every error a base can answer becomes the same problem on every route
// of that base; masked errors (500, 503) are logged once each, with their
// cause and trace id, and nothing else is.
func TestEveryErrorMapping(t *testing.T) {
	t.Parallel()
	c := newContract(t, backend.Options{Breaker: breaker.Config{ConsecutiveFailures: 1 << 20}})
	bases := map[*fakeBase]string{c.a: "base A", c.b: "base B", c.c: "base C"}
	routesOf := map[*fakeBase][]string{
		c.a: {"create-grant", "revoke-grant", "get-person", "list-debts", "list-access-logs", "access-history", "verify-audit-log", "audit-head", "audit-proof", "subject-report"},
		c.b: {"get-profile", "get-score", "subject-report"},
		c.c: {"get-activity", "list-movements", "subject-report"},
	}
	for f, ids := range routesOf {
		base := bases[f]
		cases := mappings
		if f == c.a {
			cases = append(append([]mapping(nil), mappings...), grantMappings()...)
		}
		for _, m := range cases {
			f.fail(m.err)
			for _, id := range ids {
				before := strings.Count(c.logged(), "masked error")
				a := c.call(t, id)
				detail := m.detail
				if strings.Contains(detail, "%s") {
					detail = strings.ReplaceAll(detail, "%s", base)
				}
				wantProblem(t, base+" "+m.name+" on "+id, a, m.status, m.kind, detail, m.retryAfter)
				logs := c.logged()
				if n := strings.Count(logs, "masked error") - before; (n == 1) != m.masked || n > 1 {
					t.Errorf("%s %s on %s: logged %d times (masked %v)", base, m.name, id, n, m.masked)
				}
				if m.masked {
					last := logs[strings.LastIndex(logs, "masked error"):]
					if !strings.Contains(last, status.Convert(m.err).Message()) || !strings.Contains(last, "trace_id="+traceID.String()) {
						t.Errorf("%s %s: the log line lacks the cause or the trace id: %s", base, m.name, last)
					}
				}
			}
		}
		f.fail(nil)
	}
}

// Failures of the hop itself: an open breaker and a full bulkhead are
// 503 (logged), the partner's own share of the bulkhead 429.
func TestHopFailures(t *testing.T) {
	t.Parallel()
	c := newContract(t, backend.Options{Breaker: breaker.Config{ConsecutiveFailures: 1, OpenFor: time.Hour}})
	c.c.fail(status.Error(codes.Unavailable, "connection refused"))
	c.call(t, "get-activity")
	c.c.fail(nil)
	a := c.call(t, "get-activity")
	wantProblem(t, "open breaker", a, 503, "unavailable", "base C is unavailable; retry later", "")
	if !strings.Contains(c.logged(), breaker.ErrOpen.Error()) {
		t.Errorf("the open breaker was not logged: %s", c.logged())
	}

	busy := newContract(t, backend.Options{MaxInFlight: 4, PerPartner: 1})
	hold := make(chan struct{})
	busy.b.mu.Lock()
	busy.b.hold = hold
	busy.b.mu.Unlock()
	done := make(chan answer)
	go func() { done <- busy.call(t, "get-score") }()
	for busy.b.received("/baseb.v1.ProfileService/GetScore") == nil {
		time.Sleep(time.Millisecond)
	}
	wantProblem(t, "partner's share in flight", busy.call(t, "get-profile"), 429, "too-many-concurrent-calls",
		"your calls in flight to base B are at your share; retry when some finish", "1")
	close(hold)
	if a := <-done; a.Status != 200 {
		t.Errorf("the held call: %d %s", a.Status, a.Body)
	}
}

// What the gateway checks itself never reaches a base.
func TestGatewayRefusals(t *testing.T) {
	t.Parallel()
	c := newContract(t, backend.Options{})
	cases := []struct {
		id, path, header, value string
		status                  int
		kind, detail            string
	}{
		{"get-person", "/v1/people/52998224725", "", "", 401, "missing-backend-credential", "this call needs a grant token in X-Strata-Grant"},
		{"get-profile", "/v1/profiles/52998224725", "Authorization", basic, 401, "missing-backend-credential",
			"this call needs an OAuth2 access token: Authorization: Bearer <token>"},
		{"get-activity", "/v1/activity/52998224725", "Authorization", bearer, 401, "missing-backend-credential",
			"this call needs Base C basic credentials: Authorization: Basic <base64(user:password)>"},
		{"get-activity", "/v1/activity/12345678900", "Authorization", basic, 400, "invalid-input", "invalid CPF: CPF check digits do not match"},
		{"unknown", "/v1/nowhere", "", "", 404, "not-found", "no such endpoint; see /openapi.json"},
	}
	for _, tc := range cases {
		var h []string
		if tc.header != "" {
			h = []string{tc.header, tc.value}
		}
		wantProblem(t, tc.id+" "+tc.path, c.do(t, "GET", tc.path, "", h...), tc.status, tc.kind, tc.detail, "")
	}
	for _, f := range []*fakeBase{c.a, c.b, c.c} {
		f.mu.Lock()
		n := len(f.md)
		f.mu.Unlock()
		if n > 0 {
			t.Errorf("a refused call reached a base: %v", f.md)
		}
	}
}

// Each base gets the partner's credential and what it needs to check it:
// Base B the partner's bound OAuth2 clients, Base A's audit service which
// scope the key holds; every base the partner and the client's address.
func TestForwardedMetadata(t *testing.T) {
	t.Parallel()
	c := newContract(t, backend.Options{})
	for _, id := range []string{"get-profile", "get-activity", "list-access-logs", "get-person"} {
		if a := c.call(t, id); a.Status != 200 {
			t.Fatalf("%s: %d %s", id, a.Status, a.Body)
		}
	}
	checks := []struct {
		f            *fakeBase
		method, k, v string
	}{
		{c.b, "/baseb.v1.ProfileService/GetProfile", "authorization", bearer},
		{c.b, "/baseb.v1.ProfileService/GetProfile", "x-partner-oauth-clients", "demo-bank,app-2"},
		{c.b, "/baseb.v1.ProfileService/GetProfile", "x-partner-id", "demo-bank"},
		{c.c, "/basec.v1.ActivityService/GetActivity", "authorization", basic},
		{c.c, "/basec.v1.ActivityService/GetActivity", "x-client-ip", "203.0.113.7"},
		{c.a, "/basea.v1.AuditService/ListAccessLogs", "x-audit-scope", "all"},
		{c.a, "/basea.v1.PeopleService/GetPerson", "x-partner-id", "demo-bank"},
	}
	for _, ch := range checks {
		if got := ch.f.received(ch.method).Get(ch.k); len(got) != 1 || got[0] != ch.v {
			t.Errorf("%s %s = %v, want %q", ch.method, ch.k, got, ch.v)
		}
	}
	if got := c.a.received("/basea.v1.PeopleService/GetPerson").Get("authorization"); len(got) != 0 {
		t.Errorf("Base A got an Authorization header: %v", got)
	}
}
