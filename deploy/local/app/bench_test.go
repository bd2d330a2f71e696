package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/platformtest"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// BenchmarkReadPaths is `make bench`'s platform part: every service in its
// own process as in production, CPFs seeded (STRATA_BENCH_CPFS, a
// comma-separated list of sizes, default 10000; each size is measured in
// turn on the same platform), and each read path through the gateway held
// against its transport floor measured in the same run:
//
//   - Base C activity, Base B profile (a token from the built-in issuer),
//     Base A grant + audited read (two calls: a grant for one read, then
//     the read), each on a CPF drawn at random from the seeded ones;
//   - floors: an HTTP server in this process answering the same bytes
//     (the partner's hop), and a gRPC health check on the same base over
//     the same mutual TLS (the internal hop); the two-hop floor is their
//     sum (for Base A: twice each, as the path makes two calls);
//   - for each: p50/p99 with one caller, throughput with 8 callers, the
//     CPU per request of every process (services, and the PostgreSQL,
//     RabbitMQ and FerretDB processes of the test environment) over the
//     8-caller run, and the open-loop p50/p99 at half the 8-caller rate
//     (the generator capped to one core, its CPU reported).
//
// Figures go to standard output as a table; compare them only within one
// run (the machine is shared).
func BenchmarkReadPaths(b *testing.B) {
	bin := os.Getenv("STRATA_E2E_BIN_DIR")
	if bin == "" {
		b.Skip("set STRATA_E2E_BIN_DIR (make bench does) to the built service binaries")
	}
	sizes := []int{10_000}
	if s := os.Getenv("STRATA_BENCH_CPFS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 100 {
				b.Fatalf("STRATA_BENCH_CPFS: %q is not a size of at least 100", f)
			}
			sizes = append(sizes, n)
		}
	}
	ctx := context.Background()
	stores := platformtest.SharedStores(b)
	pl, cfg := platformtest.Start(b, ctx, platformtest.Options{Stores: stores,
		Config: app.Config{DataDir: b.TempDir(), BinDir: bin, DatabaseSuffix: ownDatabases("bench")}})
	env := pl.Env()
	h := &benchHTTP{base: "http://" + cfg.GatewayAddr, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}}
	// A key whose limits never refuse, so the limiter's cost is measured
	// but it never answers 429.
	key := h.mustJSON(b, "POST", "/v1/admin/partners/demo-bank/keys", env["STRATA_ADMIN_KEY"], "",
		`{"scopes":["base-a:grant","base-a:read","base-b:read","base-c:read"],"rate_per_second":10000,"burst":100000,"daily_quota":100000000}`)["key"].(string)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(env["STRATA_BASEC_USER"]+":"+env["STRATA_BASEC_PASSWORD"]))
	health := func(port int, name string) func() error {
		conn, err := app.DialAs(cfg.DataDir, "gateway", name, fmt.Sprintf("127.0.0.1:%d", port+cfg.PortOffset))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		return healthCheck(conn)
	}
	hA, hB, hC := health(7101, "base-a"), health(7201, "base-b"), health(7301, "base-c")
	cconn, err := app.DialAs(cfg.DataDir, "gateway", "base-c", fmt.Sprintf("127.0.0.1:%d", 7301+cfg.PortOffset))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cconn.Close() })
	probe := newEventProbe(cconn, basic, func(c string) error { _, err := h.get("/v1/activity/"+c, key, basic, ""); return err })
	fmt.Printf("bench: machine: %d cores; every figure below is from this run only\n", runtime.NumCPU())

	seeded := 0
	for _, n := range sizes {
		if n > seeded {
			start := time.Now()
			if err := app.Seed(ctx, app.SeedConfig{DataDir: cfg.DataDir, BinDir: bin, DatabaseURL: stores.DatabaseURL, MongoURI: stores.MongoURI,
				CPFs: n, DatabaseSuffix: cfg.DatabaseSuffix}, io.Discard); err != nil {
				b.Fatal(err)
			}
			fmt.Printf("bench: seeded %d CPFs in every base in %s\n", n, time.Since(start).Round(time.Second))
			seeded = n
		}
		// A fresh token per size (the issuer's tokens last 10 minutes).
		bearer := "Bearer " + h.token(b, env["STRATA_OAUTH_CLIENT_ID"], env["STRATA_OAUTH_CLIENT_SECRET"])
		cpfOf := func() string { return app.SyntheticCPF(rand.IntN(n)) }
		paths := []benchPath{
			{name: "base_c_activity", hops: 1, health: hC, ops: 9301, op: func() ([]byte, error) {
				return h.get("/v1/activity/"+cpfOf(), key, basic, "")
			}},
			{name: "base_b_profile", hops: 1, health: hB, ops: 9201, op: func() ([]byte, error) {
				return h.get("/v1/profiles/"+cpfOf(), key, bearer, "")
			}},
			{name: "base_a_grant_read", hops: 2, health: hA, ops: 9101, op: func() ([]byte, error) {
				c := cpfOf()
				g, err := h.do("POST", "/v1/grants", key, "", "",
					`{"cpf":"`+c+`","purpose":"credit_analysis","reason":"benchmark of the audited read","fields":["name"],"max_uses":1}`, 201)
				if err != nil {
					return nil, err
				}
				var grant struct{ Token string }
				if err := json.Unmarshal(g, &grant); err != nil || grant.Token == "" {
					return nil, fmt.Errorf("grant: %v %s", err, g)
				}
				return h.get("/v1/people/"+c, key, "", grant.Token)
			}},
		}
		for _, p := range paths {
			p.gatewayOps, p.offset = env["STRATA_OPS_URL"], cfg.PortOffset
			p.probe, p.cpfOf = probe, cpfOf
			// Like for like: the previous path's side effects (events
			// still queued for Base C and B) are drained first.
			waitDrained(b, stores.AMQPURL)
			p.measure(b, pl, n)
		}
	}

	// Resident memory of each service process after the load (aim: ≤ 256
	// MiB each).
	rss := pl.RSS()
	names := make([]string, 0, len(rss))
	for n := range rss {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, rss[n]>>20))
	}
	fmt.Printf("bench: resident memory after the load, MiB: %s\n", strings.Join(parts, ", "))
}

// benchPath is one read path through the gateway and its floors.
type benchPath struct {
	name string
	// hops is how many gateway calls one op makes (the floor counts each).
	hops   int
	op     func() ([]byte, error)
	health func() error
	// ops is the base's (first replica's) operator port before the
	// platform's offset; gatewayOps the gateway's operator URL: with
	// STRATA_BENCH_PROFILE set to a directory, CPU profiles of both are
	// taken during the 8-caller run.
	ops        int
	offset     int
	gatewayOps string
	// probe measures the cpf.queried lag on CPFs from cpfOf.
	probe eventProbe
	cpfOf func() string
}

// profile records, when STRATA_BENCH_PROFILE names a directory, a CPU
// profile of the gateway and of the path's base over the next d, in the
// background; wait returns once both are written.
func (p benchPath) profile(b *testing.B, prefix string, d time.Duration) (wait func()) {
	dir := os.Getenv("STRATA_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	targets := map[string]string{"gateway": p.gatewayOps, "base": fmt.Sprintf("http://127.0.0.1:%d", p.ops+p.offset)}
	// FerretDB runs inside the test environment's process; it serves a
	// profile when started with STRATA_TEST_PPROF.
	if u := os.Getenv("STRATA_TEST_PPROF_URL"); u != "" {
		targets["ferretdb"] = u
	}
	for name, base := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds())))
			if err != nil {
				b.Logf("profile %s: %v", name, err)
				return
			}
			defer resp.Body.Close()
			out, err := os.Create(filepath.Join(dir, prefix+"-"+name+".pprof"))
			if err != nil {
				b.Logf("profile %s: %v", name, err)
				return
			}
			defer out.Close()
			_, _ = io.Copy(out, resp.Body)
		}()
	}
	return wg.Wait
}

func (p benchPath) measure(b *testing.B, pl *app.Platform, cpfs int) {
	body, err := p.op()
	if err != nil {
		b.Fatalf("%s: %v", p.name, err)
	}
	// The partner's hop floor: an HTTP server answering the same bytes.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer echo.Close()
	ehc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	echoOp := func() error {
		resp, err := ehc.Get(echo.URL)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	op := func() error { _, err := p.op(); return err }
	// Warm-up: connections, caches, the JIT of the stores.
	closedLoop(8, 2*time.Second, op)

	prefix := fmt.Sprintf("%s_%dk_cpfs", p.name, cpfs/1000)
	var one, echo1, health1 latency
	b.Run(prefix+"/one_caller", func(b *testing.B) { one = measureLatency(b, op) })
	b.Run(prefix+"/floor_http_echo", func(b *testing.B) { echo1 = measureLatency(b, echoOp) })
	b.Run(prefix+"/floor_grpc_health", func(b *testing.B) { health1 = measureLatency(b, p.health) })

	profiled := p.profile(b, prefix, 4*time.Second)
	before := stackCPU(pl)
	run := closedLoop(8, 5*time.Second, op)
	// The CPU is read once the run's events are applied, so it includes
	// every side effect of the run's reads.
	events := measureEventThroughput(p.probe, run, p.cpfOf())
	cpu := stackCPU(pl).minus(before)
	profiled()
	echo8 := closedLoop(8, 3*time.Second, echoOp)
	health8 := closedLoop(8, 3*time.Second, p.health)
	floorRate := min(echo8.rate(), health8.rate()) / float64(p.hops)

	// Open loop at half the 8-caller rate, with cpf.queried lag probes
	// (Base C lookups through the gateway) alongside.
	var lags []time.Duration
	var lw sync.WaitGroup
	lw.Add(1)
	go func() {
		defer lw.Done()
		lags = p.probe.lags(4500*time.Millisecond, func(int) string { return p.cpfOf() })
	}()
	prev := runtime.GOMAXPROCS(1)
	open := testenv.OpenLoop(run.rate()/2, 5*time.Second, 128, op)
	runtime.GOMAXPROCS(prev)
	lw.Wait()

	floor := time.Duration(p.hops) * (echo1.p50 + health1.p50)
	fmt.Printf("bench: %-28s p50 %6dµs p99 %6dµs = %.2f× its floor %dµs (HTTP echo %dµs + gRPC health %dµs, ×%d calls)\n",
		prefix, one.p50.Microseconds(), one.p99.Microseconds(), ratio(one.p50, floor), floor.Microseconds(),
		echo1.p50.Microseconds(), health1.p50.Microseconds(), p.hops)
	fmt.Printf("bench: %-28s 8 callers %6.0f/s = %3.0f%% of the floor's %.0f/s; failed %d\n",
		"", run.rate(), 100*run.rate()/floorRate, floorRate, run.failed+echo8.failed+health8.failed)
	fmt.Printf("bench: %-28s CPU per op %dµs: %s\n", "", cpu.per(run.ok).Microseconds(), cpu.breakdown(run.ok))
	fmt.Printf("bench: %-28s open loop at %.0f/s (half of 8 callers): p50 %dµs p99 %dµs, failed %d, generator CPU %.0f%% of a core\n",
		"", run.rate()/2, open.P50.Microseconds(), open.P99.Microseconds(), open.Failed, 100*open.GeneratorCPU.Seconds()/open.Elapsed.Seconds())
	fmt.Printf("bench: %-28s event lag at half load (a lookup until Base C answers with it; aim p99 ≤ 250ms): %s\n", "", lagSummary(lags))
	fmt.Printf("bench: %-28s %s\n", "", events)
	if run.failed > 0 || open.Failed > 0 {
		b.Errorf("%s: %d closed-loop and %d open-loop ops failed (first: %v)", prefix, run.failed, open.Failed, run.firstErr)
	}
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }

type latency struct{ p50, p99 time.Duration }

// measureLatency runs op b.N times, one at a time, and reports p50/p99.
func measureLatency(b *testing.B, op func() error) latency {
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	l := latency{p50: samples[len(samples)/2], p99: samples[(len(samples)-1)*99/100]}
	b.ReportMetric(float64(l.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.p99.Microseconds()), "p99-µs")
	return l
}

type loopResult struct {
	ok, failed int64
	elapsed    time.Duration
	firstErr   error
}

func (r loopResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// closedLoop runs op from n callers for d.
func closedLoop(n int, d time.Duration, op func() error) loopResult {
	var ok, failed atomic.Int64
	var once sync.Once
	var first error
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := op(); err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return loopResult{ok: ok.Load(), failed: failed.Load(), elapsed: time.Since(start), firstErr: first}
}

func healthCheck(conn *grpc.ClientConn) func() error {
	hc := healthpb.NewHealthClient(conn)
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
}

// benchHTTP calls the gateway.
type benchHTTP struct {
	base string
	hc   *http.Client
}

func (h *benchHTTP) do(method, path, key, authz, grant, body string, want int) ([]byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.base+path, r)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Api-Key", key)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if grant != "" {
		req.Header.Set("X-Strata-Grant", grant)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %.200s", method, path, resp.StatusCode, out)
	}
	return out, nil
}

func (h *benchHTTP) get(path, key, authz, grant string) ([]byte, error) {
	return h.do("GET", path, key, authz, grant, "", 200)
}

func (h *benchHTTP) mustJSON(b *testing.B, method, path, key, authz, body string) map[string]any {
	b.Helper()
	out, err := h.do(method, path, key, authz, "", body, 201)
	if err != nil {
		b.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		b.Fatal(err)
	}
	return m
}

func (h *benchHTTP) token(b *testing.B, id, secret string) string {
	b.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"base-b:read"}}
	req, _ := http.NewRequest("POST", h.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := h.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		b.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}
