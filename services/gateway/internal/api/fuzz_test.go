package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/telemetry"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
)

// testAPI serves the public API with every scope granted and backends
// that cannot be reached: whatever the request, the answer must be a
// 4xx problem or a 503, never a 500 or a crash.
func testAPI(t testing.TB) http.Handler {
	t.Helper()
	set, _ := breaker.NewSet(telemetry.Noop().Meter("t"), logging.Discard())
	pool := func(name string) *backend.Pool {
		p, err := backend.New(name, []string{"127.0.0.1:1"}, set, backend.Options{Timeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	mux := http.NewServeMux()
	api := NewAPI(mux)
	(&Handlers{Backends: Backends{A: pool("a"), B: pool("b"), C: pool("c")}, Events: nil}).Register(api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), callerKey{}, Caller{PartnerID: "p", Scopes: apikey.Strings(apikey.Scopes()), ClientIP: "127.0.0.1"})
		Edge(64<<10, mux).ServeHTTP(w, r.WithContext(ctx))
	})
}

func FuzzRequestDecoding(f *testing.F) {
	f.Add("POST", "/v1/grants", `{"cpf":"529.982.247-25","purpose":"credit_analysis","reason":"loan application","fields":["name"]}`)
	f.Add("POST", "/v1/grants", `{"cpf":1}`)
	f.Add("GET", "/v1/activity/52998224725/movements?limit=5&from=2020-01-01T00:00:00Z", "")
	f.Add("GET", "/v1/audit/access-logs?page_size=0&outcome=allowed", "")
	f.Add("GET", "/v1/people/%00", "")
	h := testAPI(f)
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") || len(target) > 2048 {
			return
		}
		req, err := http.NewRequest(method, "http://x"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Basic YTpi")
		req.Header.Set("X-Strata-Grant", "sgt_x")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			b, _ := io.ReadAll(rec.Body)
			t.Fatalf("%s %s %q -> %d %s", method, target, body, rec.Code, b)
		}
		if rec.Code >= 400 && rec.Code != 404 && rec.Code != 405 {
			var p map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || !strings.HasPrefix(p["type"].(string), "urn:strata:problem:") {
				t.Fatalf("%d without a problem body: %s", rec.Code, rec.Body.String())
			}
		}
	})
}
