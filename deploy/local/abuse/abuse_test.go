//go:build abuse

// Package abuse is the suite behind `make abuse`: a hostile partner and a
// well-behaved one share one platform started from the real binaries. For
// a while the hostile one sends malformed credentials of every kind,
// malformed and oversized bodies, wrong passwords for the other partner's
// Base C account, made-up API keys and OAuth clients and bursts of
// expensive calls, while the well-behaved partner reads from all three
// bases. Asserted: the well-behaved partner sees 100 % success and a p99
// within 1.5× of its quiet baseline (quiet and attack windows alternate;
// the median over attack windows of p99 against the quiet windows either
// side); no breaker anywhere leaves closed; the hostile partner gets no
// 5xx (its malformed calls 4xx). The hostile partner runs in a child
// process (hostile_test.go).
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
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
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

	job := hostileJob{Base: s.base, Key: evil, Victim: victim, VictimBasic: g.basic,
		ClientID: env["STRATA_OAUTH_CLIENT_ID"], ClientSecret: env["STRATA_OAUTH_CLIENT_SECRET"]}
	// Quiet and attack windows alternate, Q A Q A … A Q, and each attack
	// window is compared with the quiet windows on either side of it: a
	// change in the shared machine's load between a baseline and an attack
	// phase weighs on both sides of each pair alike, and one window that
	// outside load happened to hit cannot decide the verdict alone (the
	// median of the pairs does). The hostile partner is a child process
	// (hostile_test.go), alive exactly for its window.
	quiet, attackFor := seconds("STRATA_ABUSE_QUIET_SECONDS", 8), seconds("STRATA_ABUSE_SECONDS", 60)
	const rounds = 6
	job.For = attackFor / rounds
	prof := newProfiler(t, s)
	watch := &breakerWatch{}
	wctx, wstop := context.WithCancel(context.Background())
	var wwg sync.WaitGroup
	wwg.Add(1)
	go func() { defer wwg.Done(); watch.run(wctx, s) }()

	quietWindow := func(label string) []sample {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		defer cancel()
		defer prof.capture(label, quiet)()
		return g.phase(ctx, 2)
	}
	var tallies []tally
	attackWindow := func(label string) []sample {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		defer prof.capture(label, job.For)()
		var ts []tally
		var cpu time.Duration
		var err error
		t0 := time.Now()
		go func() {
			defer cancel()
			cctx, ccancel := context.WithTimeout(context.Background(), job.For+time.Minute)
			defer ccancel()
			ts, cpu, err = runHostile(cctx, job)
		}()
		lat := g.phase(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ABUSE   %s: hostile child ran %s using %s of CPU (%.2f cores)", label, time.Since(t0).Round(time.Millisecond),
			cpu.Round(time.Millisecond), cpu.Seconds()/time.Since(t0).Seconds())
		if tallies == nil {
			tallies = make([]tally, len(ts))
			for i, x := range ts {
				tallies[i] = tally{Name: x.Name, Mal: x.Mal}
			}
		}
		for i := range ts {
			tallies[i].N += ts[i].N
			tallies[i].C4 += ts[i].C4
			tallies[i].C5 += ts[i].C5
			if tallies[i].Sample == "" {
				tallies[i].Sample = ts[i].Sample
			}
		}
		return lat
	}
	t.Logf("ABUSE load average at the start of measuring: %s", loadavg())
	quiets := [][]sample{quietWindow("quiet-0")}
	var attacked [][]sample
	for r := range rounds {
		attacked = append(attacked, attackWindow(fmt.Sprintf("attack-%d", r)))
		quiets = append(quiets, quietWindow(fmt.Sprintf("quiet-%d", r+1)))
	}
	wstop()
	wwg.Wait()
	t.Logf("ABUSE load average at the end: %s", loadavg())

	all := func(ws [][]sample) []sample { return slices.Concat(ws...) }
	q, a := all(quiets), all(attacked)
	for _, op := range []string{"grant", "person", "profile", "activity"} {
		qo, ao := durs(q, op), durs(a, op)
		t.Logf("ABUSE   good %-9s quiet p50 %s p99 %s | under attack p50 %s p99 %s (%.2f×)", op, p50(qo), p99(qo), p50(ao), p99(ao), ratio(ao, qo))
	}
	var ratios []float64
	for i, w := range attacked {
		around := durs(slices.Concat(quiets[i], quiets[i+1]), "")
		ratios = append(ratios, ratio(durs(w, ""), around))
		t.Logf("ABUSE   window %d: quiet p99 %s | attack %d calls p99 %s | quiet p99 %s → %.2f× the quiet windows around it",
			i, p99(durs(quiets[i], "")), len(w), p99(durs(w, "")), p99(durs(quiets[i+1], "")), ratios[i])
	}
	med := median(ratios)
	t.Logf("ABUSE good partner: quiet %d calls p50 %s p99 %s | under attack %d calls p50 %s p99 %s (pooled %.2f×) | median of the %d window ratios %.2f× | failures %d of %d",
		len(q), p50(durs(q, "")), p99(durs(q, "")), len(a), p50(durs(a, "")), p99(durs(a, "")), ratio(durs(a, ""), durs(q, "")),
		len(ratios), med, g.nfail, g.total)
	var hostileTotal int64
	for _, tl := range tallies {
		hostileTotal += tl.N
	}
	t.Logf("ABUSE hostile partner: %d calls over %s (a child process per window)", hostileTotal, attackFor)
	if len(tallies) == 0 {
		t.Error("the hostile partner made no calls")
	}
	for _, tl := range tallies {
		t.Logf("ABUSE   %-48s %5d calls, %5d 4xx, %d 5xx %s", tl.Name, tl.N, tl.C4, tl.C5, tl.Sample)
		if tl.C5 > 0 {
			t.Errorf("hostile %q got %d 5xx answers: %s", tl.Name, tl.C5, tl.Sample)
		}
		if tl.Mal && tl.C4 != tl.N {
			t.Errorf("hostile %q: %d of %d answers were not 4xx", tl.Name, tl.N-tl.C4, tl.N)
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
	if med > 1.5 {
		t.Errorf("the well-behaved partner's p99 under attack is %.2f× that of the quiet windows around it (median of %d windows: %.2f); the aim is at most 1.5×",
			med, len(ratios), ratios)
	}
}

// loadavg is the machine's load average (1, 5, 15 minutes), for the record.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func ratio(a, q []time.Duration) float64 { return float64(p99(a)) / float64(p99(q)) }

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(envHostile); spec != "" {
		os.Exit(hostileMain(spec))
	}
	os.Exit(m.Run())
}
