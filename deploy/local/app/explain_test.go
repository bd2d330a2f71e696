package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// seqScanAllowed are the tables a statement may read whole, and why: each
// holds a handful of rows by design, never one per CPF, access or event.
var seqScanAllowed = map[string]string{
	"partners":      "the partner registry: one row per partner, listed whole by the admin API",
	"oauth_clients": "one row per OAuth2 client, listed whole by the admin API",
}

// explainEveryStatement plans, with sequential scans disabled, every
// statement the platform's services ran on their PostgreSQL databases
// (pg_stat_statements, which the local stack loads) and fails on any plan
// that still reads a table whole: with enable_seqscan off the planner
// picks an index whenever one can serve the statement, so a Seq Scan left
// in the plan is a statement no index serves, whose cost grows with the
// table. Plans are generic (force_generic_plan), as for a prepared
// statement whose parameters are not yet known, so they hold for any value.
func explainEveryStatement(t *testing.T, ctx context.Context, cfg app.Config) {
	t.Helper()
	admin, err := pgx.Connect(ctx, testenv.PostgresAdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		t.Fatal(err)
	}
	planned, tables := 0, map[string]bool{}
	var problems []string
	// The services' own statements: their application roles' (migrations
	// run as the owner).
	for _, db := range []struct{ name, role string }{
		{cfg.DatabaseName("strata_basea"), "strata_basea_app"}, {cfg.DatabaseName("strata_gateway"), "strata_gateway_app"},
	} {
		rows, err := admin.Query(ctx, `SELECT DISTINCT s.query FROM pg_stat_statements s
			JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid
			WHERE d.datname = $1 AND r.rolname = $2 AND s.toplevel`, db.name, db.role)
		if err != nil {
			t.Fatal(err)
		}
		queries, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(testenv.PostgresAdminURL(t))
		u.Path = "/" + db.name
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range queries {
			if !isAppDML(q) {
				continue
			}
			plan, err := genericPlan(ctx, conn, q)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: cannot plan %q: %v", db.name, q, err))
				continue
			}
			planned++
			walkPlan(plan, func(n map[string]any) {
				table, _ := n["Relation Name"].(string)
				if table == "" {
					return
				}
				tables[db.name+"."+table] = true
				if _, ok := seqScanAllowed[table]; n["Node Type"] == "Seq Scan" && !ok {
					problems = append(problems, fmt.Sprintf("%s: no index serves %q: Seq Scan on %s", db.name, q, table))
				}
			})
		}
		conn.Close(ctx)
	}
	if planned < 30 {
		t.Fatalf("only %d statements recorded for the platform's databases: is pg_stat_statements loaded?", planned)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		t.Fatalf("%d statements read a table whole:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	t.Logf("EXPLAIN: %d statements of Base A and the gateway over %d tables, planned with sequential scans off: none reads a table whole (registries allowed: %d)", planned, len(tables), len(seqScanAllowed))
}

var dml = regexp.MustCompile(`(?is)^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b`)

// isAppDML is a statement of the application's own: data manipulation, not
// the migration tool's, the driver's or this test's catalog reads.
func isAppDML(q string) bool {
	if !dml.MatchString(q) {
		return false
	}
	for _, skip := range []string{"pg_catalog", "pg_advisory", "information_schema", "pg_stat_", "_schema_version", "pg_type", "pg_namespace"} {
		if strings.Contains(q, skip) {
			return false
		}
	}
	return true
}

var param = regexp.MustCompile(`\$(\d+)`)

// genericPlan is q's plan, its parameters unknown, with sequential scans
// disabled (in a transaction rolled back: nothing is executed).
func genericPlan(ctx context.Context, conn *pgx.Conn, q string) (map[string]any, error) {
	n := 0
	for _, m := range param.FindAllStringSubmatch(q, -1) {
		var i int
		fmt.Sscan(m[1], &i)
		n = max(n, i)
	}
	args := strings.TrimSuffix(strings.Repeat("NULL,", n), ",")
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, s := range []string{`SET LOCAL enable_seqscan = off`, `SET LOCAL plan_cache_mode = force_generic_plan`, `PREPARE strata_explained AS ` + q} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return nil, err
		}
	}
	exec := `EXPLAIN (FORMAT JSON) EXECUTE strata_explained`
	if n > 0 {
		exec += "(" + args + ")"
	}
	var raw string
	if err := tx.QueryRow(ctx, exec).Scan(&raw); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `DEALLOCATE strata_explained`); err != nil {
		return nil, err
	}
	var plans []map[string]any
	if err := json.Unmarshal([]byte(raw), &plans); err != nil || len(plans) == 0 {
		return nil, fmt.Errorf("plan: %v", err)
	}
	plan, _ := plans[0]["Plan"].(map[string]any)
	return plan, nil
}

func walkPlan(n map[string]any, f func(map[string]any)) {
	if n == nil {
		return
	}
	f(n)
	kids, _ := n["Plans"].([]any)
	for _, k := range kids {
		m, _ := k.(map[string]any)
		walkPlan(m, f)
	}
}
