package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/jackc/pgx/v5"
	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/platformtest"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// binaries returns a directory with every service binary: STRATA_E2E_BIN_DIR
// (make test builds them) or a fresh build.
func binaries(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("STRATA_E2E_BIN_DIR"); d != "" {
		return d
	}
	dir := t.TempDir()
	root, _ := filepath.Abs("../../..")
	for _, pkg := range []string{"services/base-a/cmd/base-a", "services/base-b/cmd/base-b", "services/base-c/cmd/base-c", "services/gateway/cmd/gateway", "services/base-a/cmd/strata-audit"} {
		cmd := exec.Command("go", "build", "-o", dir, "./"+pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

type client struct {
	t    *testing.T
	base string
	http *http.Client
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path string, body string, headers ...string) reply {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &out.body)
	return out
}

func (r reply) want(t *testing.T, status int, problemType string) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("want %d, got %d: %s", status, r.status, r.raw)
	}
	if problemType != "" {
		if r.header.Get("Content-Type") != "application/problem+json" || r.body["type"] != "urn:strata:problem:"+problemType {
			t.Fatalf("want problem %s, got %s %s", problemType, r.header.Get("Content-Type"), r.raw)
		}
	}
	return r
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func TestEveryPartnerJourneyEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dataDir, bin := t.TempDir(), binaries(t)
	dumpLogsOnFailure(t, dataDir)
	stores := platformtest.SharedStores(t)
	pl, cfg := platformtest.Start(t, ctx, platformtest.Options{Stores: stores,
		Config: app.Config{DataDir: dataDir, BinDir: bin, DatabaseSuffix: ownDatabases("e2e")}})
	env := pl.Env()
	c := &client{t: t, base: "http://" + cfg.GatewayAddr, http: &http.Client{Timeout: 10 * time.Second}}
	cpf := "529.982.247-25"
	ops := &client{t: t, base: env["STRATA_OPS_URL"], http: c.http}

	// 0. The operator surface is apart: the partners' port answers a bare
	// readiness and no metrics, detail or pprof; the operator address does.
	c.do("GET", "/metrics", "").want(t, 404, "not-found")
	c.do("GET", "/debug/pprof/", "").want(t, 404, "not-found")
	if r := c.do("GET", "/readyz", "").want(t, 200, ""); r.raw != `{"ready":true}`+"\n" {
		t.Fatalf("partners' /readyz must be bare: %s", r.raw)
	}
	if r := ops.do("GET", "/metrics", "").want(t, 200, ""); !strings.Contains(r.raw, "# TYPE") {
		t.Fatalf("operator /metrics: %.200s", r.raw)
	}
	if r := ops.do("GET", "/readyz", "").want(t, 200, ""); !strings.Contains(r.raw, "backends") {
		t.Fatalf("operator /readyz lacks backend detail: %s", r.raw)
	}
	ops.do("GET", "/debug/pprof/cmdline", "").want(t, 200, "")

	// Scopes are checked on every route (a table over the served OpenAPI).
	checkScopesOnEveryRoute(t, c, env)

	// Every service has its own broker user, and the broker keeps each to
	// its own routing keys: the gateway cannot publish Base A's event.
	users := map[string]bool{}
	for _, svc := range []string{"gateway", "base-a", "base-b", "base-c", "strata-ingest"} {
		u, _ := url.Parse(pl.BrokerURL(svc))
		users[u.User.Username()] = true
	}
	if len(users) != 5 {
		t.Fatalf("services share broker users: %v", users)
	}
	gwmq, err := amqp.Dial(ctx, amqp.Config{URL: pl.BrokerURL("gateway")})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	if err := amqp.NewPublisher(gwmq, amqp.PublisherOptions{}).Publish(pctx, amqp.Message{ID: "forged-by-gateway", Type: "debt.summary.changed", Body: []byte{}}); err == nil {
		t.Fatal("the broker let the gateway publish debt.summary.changed")
	}
	pcancel()
	_ = gwmq.Close()

	// Each service connects to PostgreSQL as its own least-privileged
	// role: none is a superuser or owns a table, none reaches the other's
	// database, and Base A's cannot change the audit tables.
	checkDatabaseRoles(t, ctx, dataDir, cfg)

	// 1. The operator creates a partner and a key with the admin key.
	admin := env["STRATA_ADMIN_KEY"]
	c.do("POST", "/v1/admin/partners", `{"id":"acme-bank","name":"ACME Bank"}`, "X-Api-Key", admin).want(t, 201, "")
	c.do("POST", "/v1/admin/partners", `{"id":"acme-bank","name":"ACME Bank"}`, "X-Api-Key", admin).want(t, 409, "conflict")
	k := c.do("POST", "/v1/admin/partners/acme-bank/keys", `{"scopes":["base-a:grant","base-a:read","base-b:read","base-c:read","audit:own"]}`, "X-Api-Key", admin).want(t, 201, "")
	key, keyID := k.str("key"), k.str("key_id")
	if !strings.HasPrefix(key, "strata_live_") || keyID == "" {
		t.Fatalf("new key: %s", k.raw)
	}
	c.do("GET", "/v1/admin/partners", "", "X-Api-Key", key).want(t, 403, "insufficient-scope")

	// 2. Grant, then read the person and the debts.
	g := c.do("POST", "/v1/grants", `{"cpf":"`+cpf+`","purpose":"credit_analysis","reason":"loan application 4711","fields":["name","debts"],"max_uses":2}`, "X-Api-Key", key).want(t, 201, "")
	grant := g.str("token")
	p := c.do("GET", "/v1/people/52998224725", "", "X-Api-Key", key, "X-Strata-Grant", grant).want(t, 200, "")
	if p.str("name") != "Maria Aparecida da Silva" || p.body["address"] != nil || p.body["debts"] == nil {
		t.Fatalf("person: %s", p.raw)
	}
	receipt := p.header.Get("Strata-Audit-Entry")
	if receipt == "" {
		t.Fatalf("a Base A read answered without its audit entry id: %v", p.header)
	}
	d := c.do("GET", "/v1/people/52998224725/debts", "", "X-Api-Key", key, "X-Strata-Grant", grant).want(t, 200, "")
	if ds, _ := d.body["debts"].([]any); len(ds) != 2 {
		t.Fatalf("debts: %s", d.raw)
	}
	c.do("GET", "/v1/people/52998224725", "", "X-Api-Key", key, "X-Strata-Grant", grant).want(t, 403, "grant-used-up")
	c.do("GET", "/v1/people/52998224725", "", "X-Api-Key", key).want(t, 401, "missing-backend-credential")
	c.do("GET", "/v1/profiles/52998224725", "", "X-Api-Key", key).want(t, 401, "missing-backend-credential")
	c.do("GET", "/v1/nowhere", "", "X-Api-Key", key).want(t, 404, "not-found")
	nameOnly := c.do("POST", "/v1/grants", `{"cpf":"`+cpf+`","purpose":"fraud_prevention","reason":"checking a suspicious application","fields":["name"]}`, "X-Api-Key", key).want(t, 201, "").str("token")
	c.do("GET", "/v1/people/52998224725/debts", "", "X-Api-Key", key, "X-Strata-Grant", nameOnly).want(t, 403, "grant-wrong-field")
	c.do("POST", "/v1/grants", `{"cpf":"123","purpose":"credit_analysis","reason":"loan application 4711","fields":["name"]}`, "X-Api-Key", key).want(t, 400, "invalid-input")
	c.do("POST", "/v1/grants", `{"cpf":"`+cpf+`","purpose":"gossip","reason":"loan application 4711","fields":["name"]}`, "X-Api-Key", key).want(t, 400, "invalid-input")
	c.do("POST", "/v1/grants", `{"cpf":"`+cpf+`","purpose":"credit_analysis","reason":"short","fields":["name"]}`, "X-Api-Key", key).want(t, 400, "invalid-input")
	c.do("POST", "/v1/grants", `{"cpf":"`+cpf+`"`, "X-Api-Key", key).want(t, 400, "invalid-input")
	c.do("POST", "/v1/grants", `{"cpf":"`+strings.Repeat("1", 70000)+`"}`, "X-Api-Key", key).want(t, 413, "payload-too-large")

	// 3. A token from the built-in issuer reads a profile and its score.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:read"}}
	req, _ := http.NewRequest("POST", c.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(env["STRATA_OAUTH_CLIENT_ID"], env["STRATA_OAUTH_CLIENT_SECRET"])
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	bearer := "Bearer " + tok.AccessToken
	// The demo client is bound to the demo partner: with ACME's key its
	// token is refused, by Base B itself.
	c.do("GET", "/v1/profiles/"+cpf, "", "X-Api-Key", key, "Authorization", bearer).want(t, 403, "backend-forbidden")
	client := env["STRATA_OAUTH_CLIENT_ID"]
	bind := `{"client_id":"` + client + `"}`
	c.do("POST", "/v1/admin/partners/acme-bank/oauth-clients", bind, "X-Api-Key", admin).want(t, 409, "conflict")
	c.do("POST", "/v1/admin/partners/acme-bank/oauth-clients", `{"client_id":"a,b"}`, "X-Api-Key", admin).want(t, 400, "invalid-input")
	c.do("POST", "/v1/admin/partners/no-such-bank/oauth-clients", `{"client_id":"x"}`, "X-Api-Key", admin).want(t, 404, "")
	c.do("POST", "/v1/admin/partners/acme-bank/oauth-clients", bind, "X-Api-Key", key).want(t, 403, "insufficient-scope")
	c.do("DELETE", "/v1/admin/partners/demo-bank/oauth-clients/"+client, "", "X-Api-Key", admin).want(t, 204, "")
	c.do("DELETE", "/v1/admin/partners/demo-bank/oauth-clients/"+client, "", "X-Api-Key", admin).want(t, 404, "")
	c.do("POST", "/v1/admin/partners/acme-bank/oauth-clients", bind, "X-Api-Key", admin).want(t, 201, "")
	c.do("POST", "/v1/admin/partners/acme-bank/oauth-clients", bind, "X-Api-Key", admin).want(t, 201, "") // idempotent
	if l := c.do("GET", "/v1/admin/partners/acme-bank/oauth-clients", "", "X-Api-Key", admin).want(t, 200, ""); !strings.Contains(l.raw, `"client_id":"`+client+`"`) {
		t.Fatalf("oauth-clients: %s", l.raw)
	}
	if env["STRATA_API_KEY"] != "" {
		c.do("GET", "/v1/profiles/"+cpf, "", "X-Api-Key", env["STRATA_API_KEY"], "Authorization", bearer).want(t, 403, "backend-forbidden")
	}
	prof := c.do("GET", "/v1/profiles/"+cpf, "", "X-Api-Key", key, "Authorization", bearer).want(t, 200, "")
	if prof.str("cpf") != "52998224725" || prof.body["age"] == nil {
		t.Fatalf("profile: %s", prof.raw)
	}
	sc := c.do("GET", "/v1/profiles/52998224725/score", "", "X-Api-Key", key, "Authorization", bearer).want(t, 200, "")
	if sc.str("band") == "" || sc.str("model_version") == "" {
		t.Fatalf("score: %s", sc.raw)
	}
	c.do("GET", "/v1/profiles/52998224725", "", "X-Api-Key", key, "Authorization", "Bearer not.a.token").want(t, 401, "backend-credential-refused")

	// 4. Activity with basic auth.
	basic := "Basic " + b64(env["STRATA_BASEC_USER"]+":"+env["STRATA_BASEC_PASSWORD"])
	// The demo activity is seeded through AMQP when the platform starts:
	// it arrives asynchronously, so wait for it rather than race it. Each
	// Base C replica checks a password with Argon2id once, then caches it;
	// on a loaded machine a first check may not fit the gateway's deadline
	// and the partner is told 429 (retry; the check still completes and is
	// cached), so a well-behaved client retries. Four complete answers in
	// a row have come from both replicas (round robin).
	for deadline, inARow := time.Now().Add(10*time.Second), 0; inARow < 4; time.Sleep(100 * time.Millisecond) {
		act := c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", key, "Authorization", basic)
		if act.status != http.StatusTooManyRequests {
			act.want(t, 200, "")
		}
		if ms, _ := act.body["movements"].([]any); act.status == 200 && act.body["last_purchase"] != nil && len(ms) == 3 {
			inARow++
		} else {
			inARow = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("seeded activity never arrived: %s", act.raw)
		}
	}
	c.do("GET", "/v1/activity/52998224725/movements?limit=2", "", "X-Api-Key", key, "Authorization", basic).want(t, 200, "")
	wrong := c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", key, "Authorization", "Basic "+b64("demo-partner:wrong-password"))
	for i := 0; wrong.status == http.StatusTooManyRequests && i < 3; i++ { // a cold check that missed the deadline (see above)
		time.Sleep(300 * time.Millisecond)
		wrong = c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", key, "Authorization", "Basic "+b64("demo-partner:wrong-password"))
	}
	wrong.want(t, 401, "backend-credential-refused")
	// The lookups above reach Base C as cpf.queried events: the last query shows up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", key, "Authorization", basic)
		if lq, _ := a.body["last_query"].(map[string]any); lq != nil && lq["partner_id"] == "acme-bank" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpf.queried never reached Base C: %s", a.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// 5. The accesses are in the audit log and the access history; the chain verifies.
	logs := c.do("GET", "/v1/audit/access-logs?cpf="+cpf+"&partner_id=acme-bank", "", "X-Api-Key", key).want(t, 200, "")
	if es, _ := logs.body["entries"].([]any); len(es) < 5 {
		t.Fatalf("access log: %s", logs.raw)
	}
	// A partner (audit:own) sees only its own entries, whatever it asks for;
	// every partner's entries, histories and verification are the auditors'.
	for _, q := range []string{"?partner_id=demo-bank", "?cpf=" + cpf, ""} {
		own := c.do("GET", "/v1/audit/access-logs"+q, "", "X-Api-Key", key).want(t, 200, "")
		es, _ := own.body["entries"].([]any)
		for _, e := range es {
			if p := e.(map[string]any)["partner_id"]; p != "acme-bank" {
				t.Fatalf("audit:own saw %v's entry with %q: %s", p, q, own.raw)
			}
		}
	}
	c.do("GET", "/v1/audit/access-history/52998224725", "", "X-Api-Key", key).want(t, 403, "insufficient-scope")
	c.do("POST", "/v1/audit/verify", "", "X-Api-Key", key).want(t, 403, "insufficient-scope")
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", env["STRATA_API_KEY"]).want(t, 200, "")
	c.do("GET", "/v1/audit/access-history/52998224725", "", "X-Api-Key", env["STRATA_API_KEY"]).want(t, 403, "insufficient-scope")
	auditor := env["STRATA_AUDITOR_KEY"]
	hist := c.do("GET", "/v1/audit/access-history/52998224725", "", "X-Api-Key", auditor).want(t, 200, "")
	if es, _ := hist.body["entries"].([]any); len(es) < 4 {
		t.Fatalf("access history: %s", hist.raw)
	}
	reads := c.do("GET", "/v1/audit/access-logs?outcome=audit_read&partner_id=acme-bank", "", "X-Api-Key", auditor).want(t, 200, "")
	if es, _ := reads.body["entries"].([]any); len(es) < 3 {
		t.Fatalf("the partner's reads of the audit log are not recorded: %s", reads.raw)
	}
	// The read's receipt proves it is in the signed log (within a checkpoint interval).
	var proof reply
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if proof = c.do("GET", "/v1/audit/entries/"+receipt+"/proof", "", "X-Api-Key", key); proof.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no inclusion proof for the read's entry: %s", proof.raw)
		}
	}
	checkInclusion(t, proof)
	head := c.do("GET", "/v1/audit/head", "", "X-Api-Key", key).want(t, 200, "")
	if head.body["tree_size"] == nil || head.str("note") == "" {
		t.Fatalf("head: %s", head.raw)
	}
	c.do("GET", "/v1/audit/head", "", "X-Api-Key", narrow0(t, c, admin)).want(t, 403, "insufficient-scope")
	// The gateway witnesses every signed head (its database and an
	// append-only file); strata-audit verifies the log against them with
	// the public verifier key and keeps the head it verified.
	wf := filepath.Join(dataDir, "witness", "audit-heads.log")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if b, _ := os.ReadFile(wf); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway witnessed no signed head")
		}
	}
	cli := exec.Command(filepath.Join(bin, "strata-audit"), "verify")
	cli.Env = os.Environ()
	for k, v := range env {
		cli.Env = append(cli.Env, k+"="+v)
	}
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), `"ok":true`) {
		t.Fatalf("strata-audit verify: %v %s", err, out)
	}
	if _, err := os.Stat(env["STRATA_AUDIT_STATE"]); err != nil {
		t.Fatalf("strata-audit kept no verified head: %v", err)
	}
	// The data subject's report covers the three bases; records of processing.
	rep := c.do("GET", "/v1/audit/subject-report/"+cpf, "", "X-Api-Key", auditor).want(t, 200, "")
	checkSubjectReport(t, rep.raw)
	c.do("GET", "/v1/audit/subject-report/"+cpf, "", "X-Api-Key", key).want(t, 403, "insufficient-scope")
	recs := c.do("GET", "/v1/audit/processing-records", "", "X-Api-Key", auditor).want(t, 200, "")
	if !strings.Contains(recs.raw, `"acme-bank"`) || !strings.Contains(recs.raw, `"credit_analysis"`) || !strings.Contains(recs.raw, `"base-c"`) {
		t.Fatalf("processing records: %s", recs.raw)
	}
	sr := exec.Command(filepath.Join(bin, "strata-audit"), "subject-report", cpf)
	sr.Env = cli.Env
	if out, err := sr.Output(); err != nil {
		t.Fatalf("strata-audit subject-report: %v", err)
	} else {
		checkSubjectReport(t, string(out))
	}
	ver := c.do("POST", "/v1/audit/verify", "", "X-Api-Key", auditor).want(t, 200, "")
	if ver.body["ok"] != true {
		t.Fatalf("verify: %s", ver.raw)
	}

	// 6. API key failures.
	c.do("GET", "/v1/audit/access-logs", "").want(t, 401, "missing-api-key")
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", "hello").want(t, 401, "malformed-api-key")
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", key[:len(key)-1]+"x").want(t, 401, "malformed-api-key")
	nk := c.do("POST", "/v1/admin/partners/acme-bank/keys", `{"scopes":["base-c:read"],"rate_per_second":0.1,"burst":2}`, "X-Api-Key", admin).want(t, 201, "")
	narrow := nk.str("key")
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", narrow).want(t, 403, "insufficient-scope")
	// 7. Rate limit: burst 2, then 429 with Retry-After.
	c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", narrow, "Authorization", basic)
	r := c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", narrow, "Authorization", basic).want(t, 429, "rate-limited")
	if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Limit") != "2" {
		t.Fatalf("429 headers: %v", r.header)
	}
	// 8. Rotation with a 2 s overlap, then revocation.
	rot := c.do("POST", "/v1/admin/partners/acme-bank/keys/"+keyID+"/rotate", `{"overlap_seconds":2}`, "X-Api-Key", admin).want(t, 201, "")
	newKey := rot.str("key")
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", key).want(t, 200, "")
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", newKey).want(t, 200, "")
	time.Sleep(2500 * time.Millisecond)
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", key).want(t, 401, "invalid-api-key")
	c.do("DELETE", "/v1/admin/partners/acme-bank/keys/"+rot.str("key_id"), "", "X-Api-Key", admin).want(t, 204, "")
	c.do("GET", "/v1/audit/access-logs", "", "X-Api-Key", newKey).want(t, 401, "invalid-api-key")

	// 9. Killing one Base B replica loses no request: reads move to the other.
	main := c.do("POST", "/v1/admin/partners/acme-bank/keys", `{"scopes":["base-a:grant","base-a:read","base-b:read","base-c:read"],"rate_per_second":1000,"burst":1000}`, "X-Api-Key", admin).want(t, 201, "").str("key")
	var failed, total int
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := c.do("GET", "/v1/profiles/52998224725", "", "X-Api-Key", main, "Authorization", bearer)
			mu.Lock()
			total++
			if r.status != 200 {
				failed++
			}
			mu.Unlock()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	_ = pl.Kill("base-b-1")
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("base-b-1 killed under load: %d requests, %d failed", total, failed)
	if failed > 1 || total < 10 {
		t.Fatalf("killing one replica failed %d of %d requests", failed, total)
	}

	// 10. All of Base B down: fast 503s while Base A and C keep answering.
	pl.StopProc("base-b-2")
	time.Sleep(1500 * time.Millisecond)
	for range 5 {
		c.do("GET", "/v1/profiles/52998224725", "", "X-Api-Key", main, "Authorization", bearer)
	}
	start := time.Now()
	c.do("GET", "/v1/profiles/52998224725", "", "X-Api-Key", main, "Authorization", bearer).want(t, 503, "unavailable")
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Fatalf("503 took %s: not failing fast", el)
	}
	c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", main, "Authorization", basic).want(t, 200, "")
	gr := c.do("POST", "/v1/grants", `{"cpf":"`+cpf+`","purpose":"credit_analysis","reason":"loan application 4712","fields":["name"]}`, "X-Api-Key", main).want(t, 201, "")
	c.do("GET", "/v1/people/52998224725", "", "X-Api-Key", main, "X-Strata-Grant", gr.str("token")).want(t, 200, "")
	ready := ops.do("GET", "/readyz", "").want(t, 200, "")
	if !strings.Contains(ready.raw, "open") && !strings.Contains(ready.raw, "unhealthy") {
		t.Fatalf("readyz does not show Base B down: %s", ready.raw)
	}
	// Restarting Base B closes the breaker again.
	for _, n := range []string{"base-b-1", "base-b-2"} {
		if err := pl.Restart(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for c.do("GET", "/v1/profiles/52998224725", "", "X-Api-Key", main, "Authorization", bearer).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("Base B did not come back")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Keys record when they were last used (written in the background).
	deadline = time.Now().Add(15 * time.Second)
	for {
		ps := c.do("GET", "/v1/admin/partners", "", "X-Api-Key", admin).want(t, 200, "")
		used := false
		partners, _ := ps.body["partners"].([]any)
		for _, p := range partners {
			pm, _ := p.(map[string]any)
			keys, _ := pm["keys"].([]any)
			for _, k := range keys {
				if km, _ := k.(map[string]any); pm["id"] == "acme-bank" && km["last_used_at"] != nil {
					used = true
				}
			}
		}
		if used {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_used_at never recorded: %s", ps.raw)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The contract is published.
	oa := c.do("GET", "/openapi.json", "").want(t, 200, "")
	if paths, _ := oa.body["paths"].(map[string]any); paths["/v1/grants"] == nil || paths["/v1/activity/{cpf}/movements"] == nil {
		t.Fatal("openapi.json lacks the public paths")
	}
	c.do("GET", "/docs", "").want(t, 200, "")

	// 8. In steady state no lookup writes to a database on its request path.
	assertNoWritesOnRequestPath(t, c, stores.DatabaseURL, cfg, admin, bearer, basic)

	// 9. strata-local seed -cpfs N fills every base, idempotently.
	seedAndRead(t, ctx, c, cfg, stores, admin, bearer, basic)

	// 10. Every statement Base A and the gateway ran is served by an index.
	explainEveryStatement(t, ctx, cfg)
}

// narrow0 is a key of another partner without audit scopes.
func narrow0(t *testing.T, c *client, admin string) string {
	c.do("POST", "/v1/admin/partners", `{"id":"no-audit-bank","name":"No Audit"}`, "X-Api-Key", admin)
	return c.do("POST", "/v1/admin/partners/no-audit-bank/keys", `{"scopes":["base-c:read"]}`, "X-Api-Key", admin).want(t, 201, "").str("key")
}

// checkInclusion verifies an inclusion proof against its signed head with
// the head's verifier key, as a partner holding its receipt would.
func checkInclusion(t *testing.T, proof reply) {
	t.Helper()
	var p struct {
		Seq       int64    `json:"seq"`
		LeafIndex int64    `json:"leaf_index"`
		LeafData  []byte   `json:"leaf_data"`
		Proof     [][]byte `json:"proof"`
		Head      struct {
			TreeSize    int64  `json:"tree_size"`
			RootHash    []byte `json:"root_hash"`
			Note        string `json:"note"`
			VerifierKey string `json:"verifier_key"`
		} `json:"head"`
	}
	if err := json.Unmarshal([]byte(proof.raw), &p); err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(p.Head.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open([]byte(p.Head.Note), note.VerifierList(v)); err != nil {
		t.Fatalf("signed head: %v", err)
	}
	var root tlog.Hash
	copy(root[:], p.Head.RootHash)
	rp := make(tlog.RecordProof, len(p.Proof))
	for i, h := range p.Proof {
		copy(rp[i][:], h)
	}
	if err := tlog.CheckRecord(rp, p.Head.TreeSize, root, p.LeafIndex, tlog.RecordHash(p.LeafData)); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	if !strings.Contains(p.Head.Note, fmt.Sprintf("\n%d\n", p.Head.TreeSize)) {
		t.Fatalf("the note does not sign the tree size: %q", p.Head.Note)
	}
}

// checkSubjectReport checks a subject report names what each of the three
// bases holds and the accesses each keeps.
func checkSubjectReport(t *testing.T, raw string) {
	t.Helper()
	var r struct {
		Bases []struct {
			Base     string `json:"base"`
			Holds    bool   `json:"holds"`
			Accesses []struct {
				PartnerID string `json:"partner_id"`
				What      string `json:"what"`
			} `json:"accesses"`
		} `json:"bases"`
	}
	if err := json.Unmarshal([]byte(raw), &r); err != nil || len(r.Bases) != 3 {
		t.Fatalf("subject report: %v %s", err, raw)
	}
	for _, b := range r.Bases {
		if !b.Holds {
			t.Fatalf("%s holds nothing about the demo CPF: %s", b.Base, raw)
		}
		switch b.Base {
		case "base-a":
			allowed := 0
			for _, a := range b.Accesses {
				if a.PartnerID == "acme-bank" && strings.HasPrefix(a.What, "allowed") {
					allowed++
				}
			}
			if allowed < 2 {
				t.Fatalf("base A's accesses miss acme-bank's reads: %s", raw)
			}
		case "base-c":
			if len(b.Accesses) != 1 || b.Accesses[0].PartnerID != "acme-bank" {
				t.Fatalf("base C's last query is missing: %s", raw)
			}
		}
	}
}

func checkDatabaseRoles(t *testing.T, ctx context.Context, dataDir string, cfg app.Config) {
	t.Helper()
	admin, err := pgx.Connect(ctx, testenv.PostgresAdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	dbA, dbG := cfg.DatabaseName("strata_basea"), cfg.DatabaseName("strata_gateway")
	var super, app int
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE r.rolsuper), count(*) FILTER (WHERE r.rolname IN ('strata_basea_app', 'strata_gateway_app'))
		FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename
		WHERE a.datname IN ($1, $2) AND a.pid <> pg_backend_pid()`, dbA, dbG).Scan(&super, &app); err != nil {
		t.Fatal(err)
	}
	if super != 0 || app == 0 {
		t.Fatalf("connections to the services' databases: %d as a superuser, %d as the app roles", super, app)
	}
	as := func(role, secret, db string) (*pgx.Conn, error) {
		pw, err := os.ReadFile(filepath.Join(dataDir, "secrets", secret))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(testenv.PostgresAdminURL(t))
		u.User, u.Path = url.UserPassword(role, strings.TrimSpace(string(pw))), "/"+db
		return pgx.Connect(ctx, u.String())
	}
	for _, c := range []struct{ role, secret, db string }{
		{"strata_gateway_app", "gateway-app-db.password", dbA},
		{"strata_basea_app", "basea-app-db.password", dbG},
	} {
		if conn, err := as(c.role, c.secret, c.db); err == nil {
			conn.Close(ctx)
			t.Fatalf("%s reached %s", c.role, c.db)
		}
	}
	basea, err := as("strata_basea_app", "basea-app-db.password", dbA)
	if err != nil {
		t.Fatal(err)
	}
	defer basea.Close(ctx)
	for _, q := range []string{`DELETE FROM audit_log`, `UPDATE audit_log SET reason = ''`, `TRUNCATE audit_log`,
		`ALTER TABLE audit_log DISABLE TRIGGER ALL`, `DROP TABLE audit_chain`, `CREATE TABLE intruder (i int)`} {
		if _, err := basea.Exec(ctx, q); err == nil {
			t.Fatalf("Base A's role ran %s", q)
		}
	}
	gw, err := as("strata_gateway_app", "gateway-app-db.password", dbG)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close(ctx)
	for _, q := range []string{`CREATE TABLE intruder (i int)`, `SELECT * FROM gateway_schema_version`} {
		if _, err := gw.Exec(ctx, q); err == nil {
			t.Fatalf("the gateway's role ran %s", q)
		}
	}
	var owners int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_database d WHERE d.datname IN ($1, $2)
		AND pg_get_userbyid(d.datdba) IN ('strata_basea_owner', 'strata_gateway_owner')`, dbA, dbG).Scan(&owners); err != nil || owners != 2 {
		t.Fatalf("database owners: %d %v", owners, err)
	}
}
