package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// observabilityDir holds the Grafana dashboards and Prometheus rules.
const observabilityDir = "../../observability"

// scrapeNames returns the metric families the operator endpoints export
// (Prometheus text format: the # TYPE lines), with each family's type.
func scrapeNames(t *testing.T, urls ...string) map[string]string {
	t.Helper()
	names := map[string]string{}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, u := range urls {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("scrape %s: %v", u, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
				names[f[2]] = f[3]
			}
		}
		_ = resp.Body.Close()
	}
	return names
}

// exprNames are the metric names a PromQL expression reads: identifiers
// that are not functions, keywords, label names or durations.
var (
	identRE  = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	labelsRE = regexp.MustCompile(`\{[^}]*\}`)
	byRE     = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	rangeRE  = regexp.MustCompile(`\[[^\]]*\]`)
	quoteRE  = regexp.MustCompile(`"[^"]*"`)
)

var promqlWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`sum rate irate increase avg max min count histogram_quantile by without on ignoring
		group_left group_right and or unless bool offset le clamp_min clamp_max abs time vector scalar topk bottomk
		delta deriv avg_over_time max_over_time min_over_time sum_over_time changes resets absent label_replace`) {
		m[w] = true
	}
	return m
}()

func exprNames(expr string) []string {
	e := quoteRE.ReplaceAllString(expr, "")
	e = labelsRE.ReplaceAllString(e, "")
	e = byRE.ReplaceAllString(e, "")
	e = rangeRE.ReplaceAllString(e, "")
	e = regexp.MustCompile(`\$[a-zA-Z_]+`).ReplaceAllString(e, "")
	var out []string
	for _, id := range identRE.FindAllString(e, -1) {
		if !promqlWords[id] {
			out = append(out, id)
		}
	}
	return out
}

// observabilityExprs returns every PromQL expression in the dashboards
// (panel targets' expr) and the alerting rules (expr), by file.
func observabilityExprs(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	dashboards, _ := filepath.Glob(filepath.Join(observabilityDir, "dashboards", "*.json"))
	rules, _ := filepath.Glob(filepath.Join(observabilityDir, "alerts", "*.yml"))
	if len(dashboards) < 3 || len(rules) < 1 {
		t.Fatalf("want the dashboards and alert rules under %s, found %v %v", observabilityDir, dashboards, rules)
	}
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.Title == "" || len(d.Panels) == 0 {
			t.Fatalf("%s: no title or no panels", f)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out[f] = append(out[f], tg.Expr)
			}
		}
	}
	for _, f := range rules {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Alert       string            `yaml:"alert"`
					Expr        string            `yaml:"expr"`
					Labels      map[string]string `yaml:"labels"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range r.Groups {
			for _, rule := range g.Rules {
				if rule.Alert == "" || rule.Expr == "" || rule.Labels["severity"] == "" || rule.Annotations["summary"] == "" {
					t.Fatalf("%s: rule %+v lacks alert, expr, severity or summary", f, rule)
				}
				out[f] = append(out[f], rule.Expr)
			}
		}
	}
	return out
}

// checkObservabilityNames fails for every metric a dashboard or rule reads
// that no service exported (exported: family name and type, scraped).
func checkObservabilityNames(t *testing.T, exported map[string]string) {
	t.Helper()
	var missing []string
	for file, exprs := range observabilityExprs(t) {
		for _, e := range exprs {
			names := exprNames(e)
			if len(names) == 0 {
				missing = append(missing, fmt.Sprintf("%s: %q reads no metric", filepath.Base(file), e))
			}
			for _, n := range names {
				if !exportedName(exported, n) {
					missing = append(missing, fmt.Sprintf("%s: %s", filepath.Base(file), n))
				}
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		var have []string
		for n := range exported {
			have = append(have, n)
		}
		sort.Strings(have)
		t.Fatalf("metrics named in deploy/observability that no service exports:\n  %s\nexported: %s", strings.Join(missing, "\n  "), strings.Join(have, " "))
	}
}

func exportedName(exported map[string]string, n string) bool {
	if _, ok := exported[n]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(n, suffix); ok && exported[base] == "histogram" {
			return true
		}
	}
	return false
}

// The check itself can fail: a name no service exports is reported, and
// the PromQL around names is not mistaken for one.
func TestObservabilityNameCheckCatchesUnknownMetrics(t *testing.T) {
	t.Parallel()
	got := exprNames(`sum by (partner) (rate(strata_gateway_limit_refusals_total{reason="rate_limited"}[5m])) / ignoring(x) histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{job=~"$job"}[5m]))) > 0.5`)
	if strings.Join(got, ",") != "strata_gateway_limit_refusals_total,http_server_request_duration_seconds_bucket" {
		t.Fatalf("names: %v", got)
	}
	exported := map[string]string{"http_server_request_duration_seconds": "histogram", "strata_gateway_limit_refusals_total": "counter"}
	for n, want := range map[string]bool{"http_server_request_duration_seconds_bucket": true, "strata_gateway_limit_refusals_total": true,
		"strata_gateway_limit_refusals": false, "strata_breaker_state": false, "strata_gateway_limit_refusals_total_bucket": false} {
		if exportedName(exported, n) != want {
			t.Errorf("exportedName(%s) = %v, want %v", n, !want, want)
		}
	}
	// Every file parses and names at least one metric per expression.
	for file, exprs := range observabilityExprs(t) {
		for _, e := range exprs {
			if len(exprNames(e)) == 0 {
				t.Errorf("%s: %q names no metric", file, e)
			}
		}
	}
}
