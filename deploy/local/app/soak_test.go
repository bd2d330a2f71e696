package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/platformtest"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// BenchmarkSoak is `make soak`: the whole platform, each service its own
// process, under an open-loop load of Base C reads through the gateway at
// half the maximum rate measured first, for STRATA_SOAK_DURATION (30m in
// make soak; it does nothing without it). Every window (a thirtieth of the
// run, at least 10 s) prints latency, the CPU per read of every process
// (services and stores), resident memory, the event lag (lookups through
// the gateway until their last query shows in Base C's answer, probed all
// through the window), the queues' depths and the size of every
// collection and table the reads grow; at the end the last 5 minutes are
// compared with the first 5 (a short soak: the last window with the
// first) and the event lag of the whole run is summarised.
func BenchmarkSoak(b *testing.B) {
	d, _ := time.ParseDuration(os.Getenv("STRATA_SOAK_DURATION"))
	bin := os.Getenv("STRATA_E2E_BIN_DIR")
	if d <= 0 || bin == "" {
		b.Skip("make soak sets STRATA_SOAK_DURATION and STRATA_E2E_BIN_DIR")
	}
	// One broker user for every service, as the soak always ran (no
	// rabbitmqctl).
	stores := &app.Stores{DatabaseURL: testenv.PostgresAdminURL(b), MongoURI: testenv.MongoURI(b), AMQPURL: testenv.AMQPURL(b)}
	ctx := context.Background()
	pl, cfg := platformtest.Start(b, ctx, platformtest.Options{Stores: stores,
		Config: app.Config{DataDir: b.TempDir(), BinDir: bin, DatabaseSuffix: ownDatabases("soak")}})
	env := pl.Env()
	base := "http://" + cfg.GatewayAddr
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", base+"/v1/admin/partners/demo-bank/keys", stringsReader(`{"scopes":["base-c:read"],"rate_per_second":10000,"burst":100000,"daily_quota":100000000}`))
	req.Header.Set("X-Api-Key", env["STRATA_ADMIN_KEY"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	key := decodeField(b, resp, "key")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(env["STRATA_BASEC_USER"]+":"+env["STRATA_BASEC_PASSWORD"]))
	// Reads spread over the seeded CPFs, so the side effects touch many
	// documents, as real traffic does.
	const cpfs = 10_000
	// 1,000 more are seeded for the lag probes, outside the read mix.
	if err := app.Seed(ctx, app.SeedConfig{DataDir: cfg.DataDir, BinDir: bin, DatabaseURL: stores.DatabaseURL, MongoURI: stores.MongoURI, CPFs: cpfs + 1000, DatabaseSuffix: cfg.DatabaseSuffix}, io.Discard); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var errMu sync.Mutex
	errs := map[string]int{}
	get := func() error {
		r, _ := http.NewRequest("GET", base+"/v1/activity/"+app.SyntheticCPF(int(next.Add(1)%cpfs)), nil)
		r.Header.Set("X-Api-Key", key)
		r.Header.Set("Authorization", basic)
		resp, err := hc.Do(r)
		if err != nil {
			errMu.Lock()
			errs["transport"]++
			errMu.Unlock()
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			errMu.Lock()
			errs[fmt.Sprint(resp.StatusCode)]++
			errMu.Unlock()
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	takeErrs := func() string {
		errMu.Lock()
		defer errMu.Unlock()
		out := fmt.Sprint(errs)
		clear(errs)
		return out
	}
	for deadline := time.Now().Add(15 * time.Second); get() != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal(get())
		}
	}
	conn, err := app.DialAs(cfg.DataDir, "gateway", "base-c", fmt.Sprintf("127.0.0.1:%d", 7301+cfg.PortOffset))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	probe := newEventProbe(conn, basic, func(c string) error {
		r, _ := http.NewRequest("GET", base+"/v1/activity/"+c, nil)
		r.Header.Set("X-Api-Key", key)
		r.Header.Set("Authorization", basic)
		resp, err := hc.Do(r)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})

	// The maximum rate: 8 callers, closed loop, 5 s.
	var done atomic.Int64
	stop := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if get() == nil {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	maxRate := float64(done.Load()) / 5
	_ = takeErrs()
	rate := maxRate / 2
	fmt.Printf("soak: max %.0f reads/s (8 callers); open loop at %.0f/s for %s\n", maxRate, rate, d)

	window := max(d/30, 10*time.Second)
	var windows []soakWindow
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	for w, start := 0, time.Now(); time.Since(start) < d; w++ {
		cpu0 := stackCPU(pl)
		// cpf.queried lag probes all through the window, alongside the
		// load, on CPFs outside the read mix.
		var lags []time.Duration
		var lw sync.WaitGroup
		lw.Add(1)
		go func() {
			defer lw.Done()
			lags = probe.lags(window-window/10, func(i int) string { return app.SyntheticCPF(cpfs + (w*997+i)%1000) })
		}()
		r := testenv.OpenLoop(rate, window, 128, get)
		lw.Wait()
		// Every process of the stack (services and stores), the
		// generator apart.
		used := stackCPU(pl).minus(cpu0)
		cpu := used.per(1)
		delete(used, "generator")
		var rss int64
		for _, v := range pl.RSS() {
			rss += v
		}
		windows = append(windows, soakWindow{p50: r.P50, p99: r.P99, sent: int64(r.Sent), cpu: cpu, rss: rss, lags: lags})
		fmt.Printf("soak %3s: p50 %s p99 %s failed %d %s | CPU µs/read %d (%s) | RSS %d MiB | event lag %s | queues %s | sizes %s\n",
			time.Since(start).Round(time.Second), r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Failed, takeErrs(),
			(cpu / time.Duration(max(r.Sent, 1))).Microseconds(), used.breakdown(int64(r.Sent)), rss>>20, lagSummary(lags),
			queueDepths(b, stores.AMQPURL), sizes(b, stores, cfg))
	}
	// The last 5 minutes against the first 5 (or the last window against
	// the first, in a short soak).
	k := max(1, min(int(5*time.Minute/window), len(windows)/2))
	first, last := summarise(windows[:k]), summarise(windows[len(windows)-k:])
	ratio := func(a, b time.Duration) float64 { return float64(b) / float64(max(a, 1)) }
	fmt.Printf("soak: last %s / first %s: p50 %.2f×, p99 %.2f×, CPU per read %.2f× (%dµs → %dµs), RSS of the services %d → %d MiB\n",
		time.Duration(k)*window, time.Duration(k)*window, ratio(first.p50, last.p50), ratio(first.p99, last.p99),
		ratio(first.cpuPer, last.cpuPer), first.cpuPer.Microseconds(), last.cpuPer.Microseconds(), first.rss>>20, last.rss>>20)
	all := summarise(windows)
	worst := time.Duration(0)
	for _, w := range windows {
		worst = max(worst, pct(w.lags, 0.99))
	}
	fmt.Printf("soak: event lag over the whole run %s; worst window p99 %dms (aim ≤ 250ms throughout)\n", lagSummary(all.lags), worst.Milliseconds())
}

// soakWindow is one window's figures.
type soakWindow struct {
	p50, p99 time.Duration
	sent     int64
	cpu      time.Duration // summed over the service processes
	rss      int64         // summed over the service processes, at the end
	lags     []time.Duration
}

type soakSummary struct {
	p50, p99, cpuPer time.Duration
	rss              int64
	lags             []time.Duration
}

// summarise averages consecutive windows: mean p50 and p99, CPU per read
// over all of them, the last window's memory, every lag probe.
func summarise(ws []soakWindow) soakSummary {
	var s soakSummary
	var cpu time.Duration
	var sent int64
	for _, w := range ws {
		s.p50 += w.p50 / time.Duration(len(ws))
		s.p99 += w.p99 / time.Duration(len(ws))
		cpu += w.cpu
		sent += w.sent
		s.lags = append(s.lags, w.lags...)
	}
	s.cpuPer = cpu / time.Duration(max(sent, 1))
	s.rss = ws[len(ws)-1].rss
	sort.Slice(s.lags, func(i, j int) bool { return s.lags[i] < s.lags[j] })
	return s
}

// queueDepths reports the messages waiting in the data queues.
func queueDepths(b *testing.B, amqpURL string) string {
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		return "unavailable"
	}
	defer conn.Close()
	var parts []string
	for _, q := range []string{"basec.events", "baseb.debt-summaries"} {
		ch, err := conn.Channel()
		if err != nil {
			return "unavailable"
		}
		if st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
			parts = append(parts, fmt.Sprintf("%s %d", q, st.Messages))
		}
		_ = ch.Close()
	}
	return strings.Join(parts, ", ")
}

// sizes reports the documents or rows of every collection and table that
// reads or their events write to.
func sizes(b *testing.B, stores *app.Stores, cfg app.Config) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var parts []string
	client, err := mongo.Connect(options.Client().ApplyURI(stores.MongoURI))
	if err == nil {
		defer func() { _ = client.Disconnect(ctx) }()
		for _, c := range []string{"strata_basec.last_queries", "strata_basec.processed_messages", "strata_basec.activity", "strata_baseb.processed_messages"} {
			db, coll, _ := strings.Cut(c, ".")
			if n, err := client.Database(cfg.DatabaseName(db)).Collection(coll).CountDocuments(ctx, bson.D{}); err == nil {
				parts = append(parts, fmt.Sprintf("%s %d", c, n))
			}
		}
	}
	u, err := url.Parse(stores.DatabaseURL)
	if err == nil {
		u.Path = "/" + cfg.DatabaseName("strata_gateway")
		if conn, err := pgx.Connect(ctx, u.String()); err == nil {
			var n int64
			if conn.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n) == nil {
				parts = append(parts, fmt.Sprintf("gateway.outbox %d", n))
			}
			_ = conn.Close(ctx)
		}
	}
	return strings.Join(parts, ", ")
}
