package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/platformtest"
	"github.com/strata-bureau/strata/pkg/testenv"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
)

// BenchmarkGateway compares, in one run and with every service in its own
// process as in production, a Base C read through the gateway (HTTP/JSON,
// API key, rate limiter, breaker, gRPC with basic auth) with the same read
// made directly over gRPC to a Base C replica.
func BenchmarkGateway(b *testing.B) {
	bin := os.Getenv("STRATA_E2E_BIN_DIR")
	if bin == "" {
		b.Skip("set STRATA_E2E_BIN_DIR (make bench does) to the built service binaries")
	}
	ctx := context.Background()
	pl, cfg := platformtest.Start(b, ctx, platformtest.Options{Config: app.Config{DataDir: b.TempDir(), BinDir: bin, DatabaseSuffix: ownDatabases("bench")}})
	env := pl.Env()
	base := "http://" + cfg.GatewayAddr
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// A key without a practical rate limit, so the limiter's cost is
	// measured but never refuses.
	req, _ := http.NewRequest("POST", base+"/v1/admin/partners/demo-bank/keys", stringsReader(`{"scopes":["base-c:read"],"rate_per_second":10000,"burst":100000,"daily_quota":100000000}`))
	req.Header.Set("X-Api-Key", env["STRATA_ADMIN_KEY"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	key := decodeField(b, resp, "key")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(env["STRATA_BASEC_USER"]+":"+env["STRATA_BASEC_PASSWORD"]))
	get := func() error {
		r, _ := http.NewRequest("GET", base+"/v1/activity/"+app.DemoCPF, nil)
		r.Header.Set("X-Api-Key", key)
		r.Header.Set("Authorization", basic)
		resp, err := hc.Do(r)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); get() != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal(get())
		}
	}
	conn, err := app.DialAs(cfg.DataDir, "gateway", "base-c", fmt.Sprintf("127.0.0.1:%d", 7301+cfg.PortOffset))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	direct := basecv1.NewActivityServiceClient(conn)
	dctx := metadata.AppendToOutgoingContext(ctx, "authorization", basic)
	grpcGet := func() error {
		_, err := direct.GetActivity(dctx, &basecv1.GetActivityRequest{Cpf: app.DemoCPF})
		return err
	}

	idle := pl.RSS()
	b.Run("activity_via_gateway", func(b *testing.B) { testenv.MeasureLatency(b, get) })
	b.Run("activity_direct_grpc", func(b *testing.B) { testenv.MeasureLatency(b, grpcGet) })
	parallel := func(op func() error) func(b *testing.B) {
		return func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			})
			b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "req/s")
		}
	}
	b.Run("activity_via_gateway_parallel", parallel(get))
	b.Run("activity_direct_grpc_parallel", parallel(grpcGet))
	// Open loop: a fixed offered rate, latency from intended send times,
	// the generator capped to one core (GOMAXPROCS=1) and its CPU reported;
	// the two variants alternate, three runs each, and the median run is
	// reported.
	for _, rate := range []float64{300, 1000} {
		b.Run(fmt.Sprintf("open_loop_%.0f_per_s", rate), func(b *testing.B) {
			prev := runtime.GOMAXPROCS(1)
			defer runtime.GOMAXPROCS(prev)
			var gw, dg []testenv.OpenLoopResult
			for range 3 {
				gw = append(gw, testenv.OpenLoop(rate, 2*time.Second, 64, get))
				dg = append(dg, testenv.OpenLoop(rate, 2*time.Second, 64, grpcGet))
			}
			med := func(rs []testenv.OpenLoopResult) testenv.OpenLoopResult {
				sort.Slice(rs, func(i, j int) bool { return rs[i].P99 < rs[j].P99 })
				return rs[1]
			}
			g, d := med(gw), med(dg)
			b.ReportMetric(float64(g.P50.Microseconds()), "gw-p50-µs")
			b.ReportMetric(float64(g.P99.Microseconds()), "gw-p99-µs")
			b.ReportMetric(float64(d.P50.Microseconds()), "direct-p50-µs")
			b.ReportMetric(float64(d.P99.Microseconds()), "direct-p99-µs")
			b.ReportMetric(float64(g.Failed+d.Failed), "failed")
			b.ReportMetric(100*g.GeneratorCPU.Seconds()/g.Elapsed.Seconds(), "gen-cpu-%")
		})
	}

	// Resident memory of each service process, idle (after start-up) and
	// after the load above (aim: ≤ 64 MiB idle, ≤ 256 MiB under load).
	loaded := pl.RSS()
	names := make([]string, 0, len(idle))
	for n := range idle {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b.Run("memory_"+name, func(b *testing.B) {
			b.ReportMetric(float64(idle[name])/(1<<20), "idle-MiB")
			b.ReportMetric(float64(loaded[name])/(1<<20), "loaded-MiB")
		})
	}
}
