package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/telemetry"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
	"github.com/strata-bureau/strata/services/gateway/internal/apikey"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
	"github.com/strata-bureau/strata/services/gateway/internal/limits"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// refusingBase is a real gRPC server for the three bases' services that
// refuses every credential, as a base does for a wrong one.
func refusingBase(tb testing.TB) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
		return nil, status.Error(codes.Unauthenticated, "invalid credentials")
	}))
	baseav1.RegisterPeopleServiceServer(s, baseav1.UnimplementedPeopleServiceServer{})
	basebv1.RegisterProfileServiceServer(s, basebv1.UnimplementedProfileServiceServer{})
	basecv1.RegisterActivityServiceServer(s, basecv1.UnimplementedActivityServiceServer{})
	go func() { _ = s.Serve(lis) }()
	tb.Cleanup(s.Stop)
	return lis.Addr().String()
}

// edgeUnderTest is the gateway's real middleware (Edge, KeyAuth with a key
// it has verified before), handlers and backend pools over real gRPC
// connections; every breaker opens on a single counted failure.
func edgeUnderTest(tb testing.TB) (http.Handler, *breaker.Set, string) {
	tb.Helper()
	set, _ := breaker.NewSet(telemetry.Noop().Meter("t"), logging.Discard())
	addr := refusingBase(tb)
	o := backend.Options{Timeout: 2 * time.Second, Breaker: breaker.Config{ConsecutiveFailures: 1, OpenFor: time.Hour}}
	pool := func(name string) *backend.Pool { return testPool(tb, name, addr, set, o) }
	mux := http.NewServeMux()
	bindings := &Bindings{TTL: time.Hour, cache: map[string]boundClients{"fuzz-bank": {list: "fuzz-client", fetched: time.Now()}}}
	(&Handlers{Backends: Backends{A: pool("base-a"), B: pool("base-b"), C: pool("base-c")}, Logger: logging.Discard(), Bindings: bindings}).Register(NewAPI(mux))
	pepper := []byte("pepper-pepper-pepper-pepper-pepp")
	_, full := apikey.New()
	parsed, _ := apikey.Parse(full)
	k := &KeyAuth{Pepper: pepper, Limiter: limits.New(), Logger: logging.Discard(), CacheTTL: time.Hour, Failures: limits.NewFailures(1<<30, 1)}
	k.init()
	k.cache[parsed.ID] = cached{fetched: time.Now(), key: store.Key{ID: parsed.ID, PartnerID: "fuzz-bank", LineageID: parsed.ID,
		SecretHash: apikey.Hash(pepper, parsed.Secret), Scopes: apikey.Strings(apikey.Scopes()), RatePerSec: 1e9, Burst: 1 << 30, DailyQuota: 1 << 40}}
	return Edge(64<<10, k.Middleware(mux)), set, full
}

var fuzzTargets = []struct{ method, path string }{
	{"GET", "/v1/profiles/52998224725"}, {"GET", "/v1/profiles/52998224725/score"},
	{"GET", "/v1/activity/52998224725"}, {"GET", "/v1/activity/52998224725/movements"},
	{"GET", "/v1/people/52998224725"}, {"GET", "/v1/people/52998224725/debts"},
}

var fuzzHeaders = []string{"Authorization", "X-Strata-Grant", "X-Forwarded-For", "X-Api-Key"}

// Arbitrary header values, driven through the real middleware, handlers
// and backend clients, never earn a 5xx and never move a breaker.
func FuzzForwardedHeaderValues(f *testing.F) {
	for _, seed := range []string{"Bearer a\x01b", "Bearer \xc3\xa9", "Basic\tYTpi", "Basic YTpi", "Basic YTpi\x00",
		"Bearer eyJ.eyJ.sig", "sgt_\x7f", "sgt_abc", "1.2.3.4, \x00", strings.Repeat("A", 9000)} {
		for i := range fuzzHeaders {
			f.Add(uint8(i), uint8(i), seed)
		}
	}
	h, set, key := edgeUnderTest(f)
	f.Fuzz(func(t *testing.T, header, target uint8, value string) {
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		name := fuzzHeaders[int(header)%len(fuzzHeaders)]
		req := httptest.NewRequest(tg.method, tg.path, nil)
		req.Header.Set("X-Api-Key", key)
		// Credentials the route needs, so the fuzzed one is what varies.
		req.Header.Set("X-Strata-Grant", "sgt_abc")
		if strings.HasPrefix(tg.path, "/v1/profiles") {
			req.Header.Set("Authorization", "Bearer abc")
		} else {
			req.Header.Set("Authorization", "Basic YTpi")
		}
		req.Header[name] = []string{value}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %s %q: %d %s", tg.method, tg.path, name, value, rec.Code, rec.Body.String())
		}
		var p map[string]any
		if rec.Code >= 400 && (json.Unmarshal(rec.Body.Bytes(), &p) != nil || !strings.HasPrefix(p["type"].(string), urn)) {
			t.Fatalf("%d without a problem body: %s", rec.Code, rec.Body.String())
		}
		for b, s := range set.States() {
			if s != breaker.Closed {
				t.Fatalf("%s %q moved breaker %s to %s", name, value, b, s)
			}
		}
	})
}
