//go:build abuse

// Package abuse is the suite behind `make abuse`: a hostile partner and a
// well-behaved one share one platform started from the real binaries. For
// a while the hostile one sends malformed credentials of every kind,
// malformed and oversized bodies, wrong passwords for the other partner's
// Base C account, made-up API keys and OAuth clients and bursts of
// expensive calls, while the well-behaved partner reads from all three
// bases. Asserted: the well-behaved partner sees 100 % success and a p99
// within 1.5× of its quiet baseline (measured before and after, on the
// same stack); no breaker anywhere leaves closed; the hostile partner gets
// no 5xx (its malformed calls 4xx).
package abuse

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/platformtest"
)

const demoCPF = "52998224725"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

type stack struct {
	lean bool
	pl   *app.Platform
	env  map[string]string
	base string
	ops  []string // every service's operator address
	http *http.Client
}

func start(t *testing.T) *stack {
	t.Helper()
	bin := os.Getenv("STRATA_E2E_BIN_DIR")
	if bin == "" {
		t.Fatal("STRATA_E2E_BIN_DIR must name the built binaries (make abuse sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	// STRATA_ABUSE_KEEP keeps the services' logs (DataDir/logs) for a
	// post-mortem: breakers log the failure that opened them, the gateway
	// every 5xx with its cause.
	dir := t.TempDir()
	if os.Getenv("STRATA_ABUSE_KEEP") != "" {
		var err error
		if dir, err = os.MkdirTemp("", "strata-abuse-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("ABUSE keeping %s", dir)
	}
	pl, cfg := platformtest.Start(t, ctx, platformtest.Options{Config: app.Config{DataDir: dir, BinDir: bin}})
	s := &stack{pl: pl, env: pl.Env(), base: "http://" + cfg.GatewayAddr,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	s.ops = append(s.ops, s.env["STRATA_OPS_URL"])
	for _, p := range []int{9101, 9201, 9202, 9301, 9302} {
		s.ops = append(s.ops, fmt.Sprintf("http://127.0.0.1:%d", p+cfg.PortOffset))
	}
	return s
}

type resp struct {
	status int
	body   map[string]any
	raw    string
}

func (s *stack) do(method, path, body string, headers ...string) resp {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		return resp{status: -1, raw: err.Error()}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header[http.CanonicalHeaderKey(headers[i])] = []string{headers[i+1]}
	}
	res, err := s.http.Do(req)
	if err != nil {
		return resp{status: -1, raw: err.Error()}
	}
	defer res.Body.Close()
	if s.lean && res.StatusCode < 500 {
		_, _ = io.Copy(io.Discard, res.Body)
		return resp{status: res.StatusCode}
	}
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &out.body)
	return out
}

func (s *stack) form(path string, form url.Values, user, pass string) resp {
	req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := s.http.Do(req)
	if err != nil {
		return resp{status: -1, raw: err.Error()}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &out.body)
	return out
}

func (s *stack) key(t *testing.T, partner string, rate int, scopes ...string) string {
	t.Helper()
	if r := s.do("POST", "/v1/admin/partners", `{"id":"`+partner+`","name":"`+partner+`"}`, "X-Api-Key", s.env["STRATA_ADMIN_KEY"]); r.status != 201 && r.status != 409 {
		t.Fatalf("partner: %d %s", r.status, r.raw)
	}
	b, _ := json.Marshal(map[string]any{"scopes": scopes, "rate_per_second": rate, "burst": 2 * rate})
	r := s.do("POST", "/v1/admin/partners/"+partner+"/keys", string(b), "X-Api-Key", s.env["STRATA_ADMIN_KEY"])
	k, _ := r.body["key"].(string)
	if r.status != 201 || k == "" {
		t.Fatalf("key: %d %s", r.status, r.raw)
	}
	return k
}

// madeUpKey is a well-formed API key with a valid checksum and an id no
// one issued: the attack that used to cost a database query each time.
func madeUpKey() string {
	enc := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	rnd := func(n int) string { b := make([]byte, n); _, _ = rand.Read(b); return enc.EncodeToString(b)[:n] }
	body := "strata_live_" + rnd(12) + "_" + rnd(32)
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], crc32.ChecksumIEEE([]byte(body)))
	return body + "_" + enc.EncodeToString(c[:])[:7]
}

// breakerWatch polls every service's operator /readyz and remembers any
// breaker seen outside "closed".
type breakerWatch struct {
	mu     sync.Mutex
	bad    map[string]string
	polls  int
	seen   map[string]bool
	errors int
}

func (w *breakerWatch) run(ctx context.Context, s *stack) {
	w.bad, w.seen = map[string]string{}, map[string]bool{}
	for ctx.Err() == nil {
		for _, o := range s.ops {
			res, err := s.http.Get(o + "/readyz")
			if err != nil {
				w.mu.Lock()
				w.errors++
				w.mu.Unlock()
				continue
			}
			var body struct {
				Breakers map[string]string `json:"breakers"`
			}
			_ = json.NewDecoder(res.Body).Decode(&body)
			res.Body.Close()
			w.mu.Lock()
			for name, st := range body.Breakers {
				w.seen[name] = true
				if st != "closed" {
					w.bad[name] = st
				}
			}
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.polls++
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// good is the well-behaved partner: it reads from the three bases.
type good struct {
	s      *stack
	key    string
	bearer string
	basic  string
	mu     sync.Mutex
	lat    []time.Duration
	names  []string
	failed []string // the first 20 failures
	nfail  int
	total  int
}

func (g *good) timed(name string, f func() resp, want int) bool {
	t0 := time.Now()
	r := f()
	d := time.Since(t0)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total++
	g.lat = append(g.lat, d)
	g.names = append(g.names, name)
	if r.status != want {
		g.nfail++
		if len(g.failed) < 20 {
			g.failed = append(g.failed, fmt.Sprintf("%s %s: %d %.200s", t0.UTC().Format("15:04:05.000"), name, r.status, strings.TrimSpace(r.raw)))
		} else {
			g.failed = append(g.failed[:20], "…")
		}
		return false
	}
	return true
}

func (g *good) iteration() {
	s := g.s
	var grant string
	if g.timed("grant", func() resp {
		r := s.do("POST", "/v1/grants", `{"cpf":"`+demoCPF+`","purpose":"credit_analysis","reason":"loan application 4711","fields":["name"]}`, "X-Api-Key", g.key)
		grant, _ = r.body["token"].(string)
		return r
	}, 201) {
		g.timed("person", func() resp {
			return s.do("GET", "/v1/people/"+demoCPF, "", "X-Api-Key", g.key, "X-Strata-Grant", grant)
		}, 200)
	}
	g.timed("profile", func() resp {
		return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", g.key, "Authorization", g.bearer)
	}, 200)
	g.timed("activity", func() resp {
		return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", g.key, "Authorization", g.basic)
	}, 200)
}

func (g *good) phase(ctx context.Context, workers int) []sample {
	g.mu.Lock()
	from := len(g.lat)
	g.mu.Unlock()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				g.iteration()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]sample, 0, len(g.lat)-from)
	for i := from; i < len(g.lat); i++ {
		out = append(out, sample{g.names[i], g.lat[i]})
	}
	return out
}

type sample struct {
	op string
	d  time.Duration
}

// durs lists the latencies of op ("" for every op).
func durs(ss []sample, op string) []time.Duration {
	var out []time.Duration
	for _, x := range ss {
		if op == "" || x.op == op {
			out = append(out, x.d)
		}
	}
	return out
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

func p50(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// attack is one kind of hostile call; mal says a 4xx is required (a
// malformed or forbidden call), otherwise only "no 5xx".
type attack struct {
	name string
	mal  bool
	do   func() resp
}

func seconds(name string, def int) time.Duration {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return time.Duration(def) * time.Second
}

func TestHostilePartnerCannotHurtAnother(t *testing.T) {
	s := start(t)
	env := s.env
	// The well-behaved partner is the demo partner (its OAuth client and Base C
	// account are bound to it), with a key of its own that allows its pace.
	g := &good{s: s, key: s.key(t, "demo-bank", 500, "base-a:grant", "base-a:read", "base-b:read", "base-c:read")}
	// The hostile partner has an ordinary key: the platform's default rate.
	evil := s.key(t, "evil-bank", 50, "base-a:grant", "base-a:read", "base-b:read", "base-c:read", "audit:own")
	tok := s.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:read"}}, env["STRATA_OAUTH_CLIENT_ID"], env["STRATA_OAUTH_CLIENT_SECRET"])
	at, _ := tok.body["access_token"].(string)
	if at == "" {
		t.Fatalf("token: %d %s", tok.status, tok.raw)
	}
	g.bearer = "Bearer " + at
	victim, victimPass := env["STRATA_BASEC_USER"], env["STRATA_BASEC_PASSWORD"]
	g.basic = "Basic " + b64(victim+":"+victimPass)
	// The demo activity arrives over AMQP: wait for it before measuring.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", g.key, "Authorization", g.basic)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Base C never served the demo activity (last answer: %d %.300s)", r.status, r.raw)
		}
	}

	// The hostile partner's calls go through a lean copy of the stack: only
	// their status matters, and the harness should spend as little CPU as
	// it can beside the partner it measures.
	good := s
	lean := *s
	lean.lean = true
	s = &lean
	big := `{"cpf":"` + strings.Repeat("1", 70_000) + `"}`
	attacks := []attack{
		// Credentials no base could accept: refused at the edge (401).
		{"bearer with a tab", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Bearer abc\tdef")
		}},
		{"bearer with non-ASCII", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Bearer \xc3\xa9t\xc3\xa9")
		}},
		{"basic with a tab", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic\tabc")
		}},
		{"basic with non-ASCII", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic \xff\xfe")
		}},
		{"basic hiding a control character", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic "+b64(victim+":pa\x00ss"))
		}},
		{"basic not base64", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic !!!")
		}},
		{"grant token with a tab", true, func() resp {
			return s.do("GET", "/v1/people/"+demoCPF, "", "X-Api-Key", evil, "X-Strata-Grant", "sgt_a\tb")
		}},
		{"grant token non-ASCII", true, func() resp {
			return s.do("GET", "/v1/people/"+demoCPF, "", "X-Api-Key", evil, "X-Strata-Grant", "sgt_\xc3\xa9")
		}},
		{"unknown grant", true, func() resp {
			return s.do("GET", "/v1/people/"+demoCPF, "", "X-Api-Key", evil, "X-Strata-Grant", "sgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		}},
		// Well-formed, wrong: reaches the base, refused there (401).
		{"forged bearer", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln")
		}},
		{"wrong password for the other partner's account", true, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF, "", "X-Api-Key", evil, "Authorization", "Basic "+b64(victim+":guess-"+strconv.Itoa(mrand.IntN(1e6))))
		}},
		// Bodies.
		{"NUL in a grant reason", true, func() resp {
			return s.do("POST", "/v1/grants", `{"cpf":"`+demoCPF+`","purpose":"credit_analysis","reason":"loan\u0000application\u0000","fields":["name"]}`, "X-Api-Key", evil)
		}},
		{"control characters in a reason", true, func() resp {
			return s.do("POST", "/v1/grants", `{"cpf":"`+demoCPF+`","purpose":"credit_analysis","reason":"loan\u001b[2J application","fields":["name"]}`, "X-Api-Key", evil)
		}},
		{"malformed JSON", true, func() resp { return s.do("POST", "/v1/grants", `{"cpf":`, "X-Api-Key", evil) }},
		{"oversized body", true, func() resp { return s.do("POST", "/v1/grants", big, "X-Api-Key", evil) }},
		{"NUL in a filter", true, func() resp {
			return s.do("GET", "/v1/audit/access-logs?page_token=a%00b", "", "X-Api-Key", evil)
		}},
		{"bad CPF", true, func() resp {
			return s.do("GET", "/v1/activity/123%00", "", "X-Api-Key", evil, "Authorization", g.basic)
		}},
		// Keys and clients.
		{"made-up API key", true, func() resp { return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", madeUpKey()) }},
		{"malformed API key", true, func() resp { return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", "strata_live_\xc3\xa9\t") }},
		{"no API key", true, func() resp { return s.do("GET", "/v1/profiles/"+demoCPF, "") }},
		{"spoofed X-Forwarded-For", true, func() resp {
			return s.do("GET", "/v1/profiles/"+demoCPF, "", "X-Api-Key", madeUpKey(), "X-Forwarded-For", "198.51.100."+strconv.Itoa(mrand.IntN(250)))
		}},
		{"made-up OAuth client", true, func() resp {
			return s.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:read"}}, "client-"+strconv.Itoa(mrand.IntN(1e6)), "x")
		}},
		{"token without scope", true, func() resp {
			return s.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, env["STRATA_OAUTH_CLIENT_ID"], env["STRATA_OAUTH_CLIENT_SECRET"])
		}},
		{"another partner's admin route", true, func() resp { return s.do("GET", "/v1/admin/partners", "", "X-Api-Key", evil) }},
		{"verify without audit:read", true, func() resp { return s.do("POST", "/v1/audit/verify", "", "X-Api-Key", evil) }},
		// Expensive but allowed: must not crowd out the other partner.
		{"big audit page", false, func() resp { return s.do("GET", "/v1/audit/access-logs?page_size=500", "", "X-Api-Key", evil) }},
		{"big movements page", false, func() resp {
			return s.do("GET", "/v1/activity/"+demoCPF+"/movements?limit=100", "", "X-Api-Key", evil, "Authorization", g.basic)
		}},
	}

	// Quiet and attack windows alternate, so a slow drift in the shared
	// machine's load weighs on both alike; the quiet p99 is the baseline.
	quiet, attackFor := seconds("STRATA_ABUSE_QUIET_SECONDS", 10), seconds("STRATA_ABUSE_SECONDS", 60)
	const rounds = 3
	watch := &breakerWatch{}
	wctx, wstop := context.WithCancel(context.Background())
	var wwg sync.WaitGroup
	wwg.Add(1)
	go func() { defer wwg.Done(); watch.run(wctx, good) }()

	run := func(d time.Duration) []sample {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return g.phase(ctx, 2)
	}

	type tally struct {
		n, c4, c5 int64
		sample    string
	}
	tallies := make([]*tally, len(attacks))
	for i := range tallies {
		tallies[i] = &tally{}
	}
	var hostileTotal atomic.Int64
	attackWindow := func(d time.Duration) []sample {
		actx, acancel := context.WithTimeout(context.Background(), d)
		defer acancel()
		var hwg sync.WaitGroup
		for w := range 4 {
			hwg.Add(1)
			go func() {
				defer hwg.Done()
				for i := w; actx.Err() == nil; i++ {
					k := i % len(attacks)
					// Now and then a burst of the same call, all at once.
					n := 1
					if mrand.IntN(50) == 0 {
						n = 20
					}
					var bwg sync.WaitGroup
					for range n {
						bwg.Add(1)
						go func() {
							defer bwg.Done()
							r := attacks[k].do()
							hostileTotal.Add(1)
							tl := tallies[k]
							atomic.AddInt64(&tl.n, 1)
							switch {
							case r.status >= 500 || r.status < 0:
								if atomic.AddInt64(&tl.c5, 1) == 1 {
									tl.sample = fmt.Sprintf("%d %.300s", r.status, r.raw)
								}
							case r.status >= 400:
								atomic.AddInt64(&tl.c4, 1)
							}
						}()
					}
					bwg.Wait()
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
		lat := g.phase(actx, 2)
		hwg.Wait()
		return lat
	}
	var before, during []sample
	for range rounds {
		before = append(before, run(quiet)...)
		during = append(during, attackWindow(attackFor/rounds)...)
	}
	after := run(quiet)
	wstop()
	wwg.Wait()

	for _, op := range []string{"grant", "person", "profile", "activity"} {
		q, a := durs(append(slices.Clone(before), after...), op), durs(during, op)
		t.Logf("ABUSE   good %-9s quiet p50 %s p99 %s | under attack p50 %s p99 %s", op, p50(q), p99(q), p50(a), p99(a))
	}
	baseline := durs(append(slices.Clone(before), after...), "")
	attacked := durs(during, "")
	t.Logf("ABUSE good partner: quiet %d calls p50 %s p99 %s | under attack %d calls p50 %s p99 %s (%.2f× the quiet p99) | failures %d of %d",
		len(baseline), p50(baseline), p99(baseline), len(attacked), p50(attacked), p99(attacked),
		float64(p99(attacked))/float64(p99(baseline)), g.nfail, g.total)
	t.Logf("ABUSE hostile partner: %d calls over %s", hostileTotal.Load(), attackFor)
	for i, a := range attacks {
		tl := tallies[i]
		t.Logf("ABUSE   %-48s %5d calls, %5d 4xx, %d 5xx %s", a.name, tl.n, tl.c4, tl.c5, tl.sample)
		if tl.c5 > 0 {
			t.Errorf("hostile %q got %d 5xx answers: %s", a.name, tl.c5, tl.sample)
		}
		if a.mal && tl.c4 != tl.n {
			t.Errorf("hostile %q: %d of %d answers were not 4xx", a.name, tl.n-tl.c4, tl.n)
		}
	}
	t.Logf("ABUSE breakers: %d watched over %d polls of %d operator addresses (%d poll errors); left closed: %v",
		len(watch.seen), watch.polls, len(s.ops), watch.errors, len(watch.bad) == 0)
	if g.nfail > 0 {
		t.Errorf("the well-behaved partner saw %d failures of %d calls: %s", g.nfail, g.total, strings.Join(g.failed, " | "))
	}
	if len(watch.bad) > 0 {
		t.Errorf("breakers left closed: %v", watch.bad)
	}
	if len(watch.seen) < 5 || watch.polls < 10 {
		t.Errorf("breaker watch saw too little: %d breakers, %d polls", len(watch.seen), watch.polls)
	}
	if limit := p99(baseline) * 3 / 2; p99(attacked) > limit {
		t.Errorf("the well-behaved partner's p99 under attack %s exceeds 1.5× its quiet p99 %s", p99(attacked), p99(baseline))
	}
}
