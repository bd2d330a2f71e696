package app_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/deploy/local/app"
)

// storeWrites counts, across the whole platform, the PostgreSQL
// transactions committed (every database) and the write commands and
// finds each Base B and Base C replica sent to the Mongo-wire server.
type storeWrites struct{ pgXacts, mongoWrites, mongoFinds int64 }

func countStoreWrites(t *testing.T, adminURL string, cfg app.Config) storeWrites {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var w storeWrites
	// Statistics reach pg_stat_database when a backend goes idle (at most
	// about a second later); this query's own transaction is excluded.
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(xact_commit + xact_rollback), 0)::bigint FROM pg_stat_database
		WHERE datname <> current_database()`).Scan(&w.pgXacts); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{9201, 9202, 9301, 9302} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port+cfg.PortOffset))
		if err != nil {
			continue // a replica the journey killed sends nothing
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "strata_mongo_commands_total{") {
				continue
			}
			n, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			for _, cmd := range []string{`command="update"`, `command="insert"`, `command="delete"`, `command="findAndModify"`} {
				if strings.Contains(line, cmd) {
					w.mongoWrites += int64(n)
				}
			}
			if strings.Contains(line, `command="find"`) {
				w.mongoFinds += int64(n)
			}
		}
		_ = resp.Body.Close()
	}
	return w
}

// assertNoWritesOnRequestPath replays reads (Base B profile and Base C
// activity lookups through the gateway, after a warm-up) and counts the
// database writes and Mongo finds they cause. A lookup that wrote synchronously would
// cost at least one statement per request; in steady state the side
// effects (cpf.queried events, last_query, last_access, usage counts)
// are batched in the background, so the whole replay costs a few batches.
func assertNoWritesOnRequestPath(t *testing.T, c *client, adminURL string, cfg app.Config, admin, bearer, basic string) {
	t.Helper()
	// A key whose limits never refuse, so only the lookups' own costs count.
	key := c.do("POST", "/v1/admin/partners/acme-bank/keys", `{"scopes":["base-b:read","base-c:read"],"rate_per_second":10000,"burst":100000,"daily_quota":100000000}`,
		"X-Api-Key", admin).want(t, 201, "").str("key")
	read := func(i int) {
		if i%2 == 0 {
			c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", key, "Authorization", basic).want(t, 200, "")
		} else {
			c.do("GET", "/v1/profiles/52998224725", "", "X-Api-Key", key, "Authorization", bearer).want(t, 200, "")
		}
	}
	for i := range 100 {
		read(i)
	}
	time.Sleep(2 * time.Second)
	before := countStoreWrites(t, adminURL, cfg)
	start := time.Now()
	const reads = 1000
	for i := range reads {
		read(i)
	}
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second)
	after := countStoreWrites(t, adminURL, cfg)
	pg := float64(after.pgXacts-before.pgXacts) / reads
	mongo := float64(after.mongoWrites-before.mongoWrites) / reads
	finds := float64(after.mongoFinds-before.mongoFinds) / reads
	t.Logf("%d reads in %s: %.3f PostgreSQL transactions, %.3f Mongo write commands and %.3f Mongo finds per read (background batches included)",
		reads, elapsed.Round(time.Millisecond), pg, mongo, finds)
	// Base B and C answer a CPF they have read before from their caches (the gateway
	// spreads reads over both replicas of each, each warmed above).
	if finds > 0.05 {
		t.Fatalf("reads go to the Mongo-wire store: %.3f finds per read", finds)
	}
	// Background work (outbox relays, usage flushes, one bulk write per
	// batch of events) adds a few per second whatever the reads do, so on
	// a slow machine it can approach a few tenths per read; a write on the
	// request path would add at least one per read.
	if pg > 0.5 || mongo > 0.5 {
		t.Fatalf("lookups write on the request path: %.3f PostgreSQL transactions and %.3f Mongo writes per read", pg, mongo)
	}
}

// seedAndRead seeds synthetic CPFs twice (the second run adds nothing)
// and reads the last one from every base through the gateway.
func seedAndRead(t *testing.T, ctx context.Context, c *client, cfg app.Config, stores *app.Stores, admin, bearer, basic string) {
	t.Helper()
	const n = 2500
	var out strings.Builder
	sc := app.SeedConfig{DataDir: cfg.DataDir, BinDir: cfg.BinDir, DatabaseURL: stores.DatabaseURL, MongoURI: stores.MongoURI, CPFs: n, DatabaseSuffix: cfg.DatabaseSuffix}
	for range 2 {
		out.Reset()
		if err := app.Seed(ctx, sc, &out); err != nil {
			t.Fatalf("seed: %v\n%s", err, out.String())
		}
	}
	for _, want := range []string{"base-a: 0 people added, 2500 already there", "base-b: 0 added, 2500 already there", "base-c: 0 added, 2500 already there"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("second seed is not a no-op (want %q):\n%s", want, out.String())
		}
	}
	last := app.SyntheticCPF(n - 1)
	key := c.do("POST", "/v1/admin/partners/acme-bank/keys", `{"scopes":["base-a:grant","base-a:read","base-b:read","base-c:read"]}`,
		"X-Api-Key", admin).want(t, 201, "").str("key")
	if p := c.do("GET", "/v1/profiles/"+last, "", "X-Api-Key", key, "Authorization", bearer).want(t, 200, ""); p.str("cpf") != last {
		t.Fatalf("seeded profile: %s", p.raw)
	}
	if a := c.do("GET", "/v1/activity/"+last, "", "X-Api-Key", key, "Authorization", basic).want(t, 200, ""); a.body["last_purchase"] == nil {
		t.Fatalf("seeded activity: %s", a.raw)
	}
	g := c.do("POST", "/v1/grants", `{"cpf":"`+last+`","purpose":"credit_analysis","reason":"scale test of seeded data","fields":["name"]}`, "X-Api-Key", key).want(t, 201, "")
	if p := c.do("GET", "/v1/people/"+last, "", "X-Api-Key", key, "X-Strata-Grant", g.str("token")).want(t, 200, ""); !strings.HasPrefix(p.str("name"), "Pessoa Sintética") {
		t.Fatalf("seeded person: %s", p.raw)
	}
}
