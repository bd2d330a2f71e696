package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/strata-bureau/strata/deploy/local/app"
	"github.com/strata-bureau/strata/deploy/local/internal/platformtest"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// span is one span an OTLP exporter sent the receiver.
type span struct {
	service, instance, name string
	kind                    tracepb.Span_SpanKind
	traceID, id, parent     string
	attrs                   map[string]string
}

// otlpReceiver is an in-process OTLP/HTTP trace receiver (POST /v1/traces,
// protobuf), the endpoint every service of the platform exports to.
type otlpReceiver struct {
	addr  string
	mu    sync.Mutex
	spans []span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var ex coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &ex)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&ex)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *otlpReceiver) add(ex *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range ex.GetResourceSpans() {
		res := map[string]string{}
		for _, a := range rs.GetResource().GetAttributes() {
			res[a.GetKey()] = a.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, a := range s.GetAttributes() {
					v := a.GetValue()
					switch {
					case v.GetStringValue() != "":
						attrs[a.GetKey()] = v.GetStringValue()
					default:
						attrs[a.GetKey()] = fmt.Sprint(v.GetIntValue())
					}
				}
				r.spans = append(r.spans, span{service: res["service.name"], instance: res["service.instance.id"], name: s.GetName(), kind: s.GetKind(),
					traceID: hex.EncodeToString(s.GetTraceId()), id: hex.EncodeToString(s.GetSpanId()), parent: hex.EncodeToString(s.GetParentSpanId()), attrs: attrs})
			}
		}
	}
}

// trace returns the spans of traceID received so far.
func (r *otlpReceiver) trace(traceID string) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if s.traceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// any reports whether a span received so far matches.
func (r *otlpReceiver) any(match func(span) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := find(r.spans, match)
	return ok
}

// find returns the first span of spans that match.
func find(spans []span, match func(span) bool) (span, bool) {
	for _, s := range spans {
		if match(s) {
			return s, true
		}
	}
	return span{}, false
}

func describe(spans []span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %s/%s %s %q id=%s parent=%s", s.service, s.instance, s.kind, s.name, s.id, s.parent)
	}
	return b.String()
}

// waitTrace polls until every named expectation holds for traceID's spans.
func (r *otlpReceiver) waitTrace(t *testing.T, traceID string, want map[string]func(span) bool) map[string]span {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := r.trace(traceID)
		got, missing := map[string]span{}, []string{}
		for name, match := range want {
			if s, ok := find(spans, match); ok {
				got[name] = s
			} else {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s lacks %v; it has:%s", traceID, missing, describe(spans))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logsWith reports, for each service's log files, whether any line holds s.
func logsWith(t *testing.T, dataDir, s string, services ...string) []string {
	t.Helper()
	var missing []string
	for _, svc := range services {
		files, _ := filepath.Glob(filepath.Join(dataDir, "logs", svc+"*.log"))
		found := false
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil && bytes.Contains(b, []byte(`"trace_id":"`+s+`"`)) {
				found = true
			}
		}
		if !found {
			missing = append(missing, svc)
		}
	}
	return missing
}

// One trace follows a partner's grant and read from the gateway's HTTP
// span through Base A (gRPC client and server), the cpf.queried publish and
// Base C's consumer; the trace id is in Base A's audit entry and in every
// service's log lines. The same holds for a cpf.queried that waited in the
// gateway's outbox while the broker refused the gateway.
func TestOneTraceFollowsARequestToEveryConsumer(t *testing.T) {
	recv := startOTLPReceiver(t)
	stores := platformtest.SharedStores(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dataDir, bin := t.TempDir(), binaries(t)
	overrides := []string{
		// The standard OpenTelemetry environment, as an operator sets it.
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + recv.addr, "OTEL_BSP_SCHEDULE_DELAY=100",
		"GATEWAY_LOG_LEVEL=debug", "BASEA_LOG_LEVEL=debug", "BASEB_LOG_LEVEL=debug", "BASEC_LOG_LEVEL=debug",
	}
	pl, cfg := platformtest.Start(t, ctx, platformtest.Options{Stores: stores, Config: app.Config{DataDir: dataDir, BinDir: bin, Overrides: overrides,
		// Its own databases: the other tests' platforms share these stores.
		DatabaseSuffix: ownDatabases("trace")}})
	env := pl.Env()
	c := &client{t: t, base: "http://" + cfg.GatewayAddr, http: &http.Client{Timeout: 10 * time.Second}}
	key := env["STRATA_API_KEY"]

	// A caller's trace: the grant and the read are two spans of it.
	const traceA = "5a7e0000c0ffee0000000000000000a1"
	grant := c.do("POST", "/v1/grants", `{"cpf":"529.982.247-25","purpose":"credit_analysis","reason":"loan application 4711","fields":["name"]}`,
		"X-Api-Key", key, "Traceparent", "00-"+traceA+"-1111111111111111-01").want(t, 201, "").str("token")
	c.do("GET", "/v1/people/52998224725", "", "X-Api-Key", key, "X-Strata-Grant", grant,
		"Traceparent", "00-"+traceA+"-2222222222222222-01").want(t, 200, "")

	got := recv.waitTrace(t, traceA, map[string]func(span) bool{
		"gateway HTTP span of the grant": func(s span) bool {
			return s.service == "gateway" && s.kind == tracepb.Span_SPAN_KIND_SERVER && s.name == "POST /v1/grants" && s.parent == "1111111111111111"
		},
		"gateway HTTP span of the read": func(s span) bool {
			return s.service == "gateway" && s.kind == tracepb.Span_SPAN_KIND_SERVER && s.name == "GET /v1/people/{cpf}" && s.parent == "2222222222222222"
		},
		"gateway gRPC client span to Base A": func(s span) bool {
			return s.service == "gateway" && s.kind == tracepb.Span_SPAN_KIND_CLIENT && strings.HasPrefix(s.name, "basea.v1.")
		},
		"Base A gRPC server span": func(s span) bool {
			return s.service == "base-a" && s.kind == tracepb.Span_SPAN_KIND_SERVER && strings.HasPrefix(s.name, "basea.v1.")
		},
		"publish of cpf.queried": func(s span) bool {
			return s.service == "gateway" && s.kind == tracepb.Span_SPAN_KIND_PRODUCER && s.name == "publish cpf.queried"
		},
		"Base C consumer span": func(s span) bool {
			return s.service == "base-c" && s.kind == tracepb.Span_SPAN_KIND_CONSUMER && s.name == "process cpf.queried"
		},
		"Base A's grant+audit store call": func(s span) bool {
			return s.service == "base-a" && s.name == "basea.store ReadWithGrant" && s.attrs["strata.basea.read_path"] != ""
		},
	})
	// Base C's Mongo calls have spans too. Not asserted in this trace: a
	// consumer batch writes in its first message's trace, which may be
	// another event that arrived with ours.
	if !recv.any(func(s span) bool {
		return s.service == "base-c" && s.kind == tracepb.Span_SPAN_KIND_CLIENT && s.attrs["db.system.name"] == "mongodb"
	}) {
		t.Fatal("Base C exported no Mongo command span")
	}
	all := recv.trace(traceA)
	// The hops are linked parent to child, not merely in the same trace.
	read, pub, consume := got["gateway HTTP span of the read"], got["publish of cpf.queried"], got["Base C consumer span"]
	if pub.parent != read.id || consume.parent != pub.id {
		t.Fatalf("publish (parent %s) is not the read's (%s) child, or the consumer (parent %s) not the publish's (%s):%s", pub.parent, read.id, consume.parent, pub.id, describe(all))
	}
	for _, s := range all {
		if s.service == "base-a" && s.kind == tracepb.Span_SPAN_KIND_SERVER {
			if _, ok := find(all, func(p span) bool {
				return p.id == s.parent && p.service == "gateway" && p.kind == tracepb.Span_SPAN_KIND_CLIENT
			}); !ok {
				t.Fatalf("Base A's server span %q has no gateway client span as parent:%s", s.name, describe(all))
			}
		}
		// No CPF, name or credential in any attribute.
		for k, v := range s.attrs {
			for _, leak := range []string{"52998224725", "529.982.247-25", key, grant} {
				if strings.Contains(v, leak) {
					t.Fatalf("span %q attribute %s holds a CPF or a credential: %q", s.name, k, v)
				}
			}
		}
	}

	// Base A's audit entry of the read names the trace.
	logs := c.do("GET", "/v1/audit/access-logs?cpf=52998224725", "", "X-Api-Key", env["STRATA_AUDITOR_KEY"]).want(t, 200, "")
	entries, _ := logs.body["entries"].([]any)
	inAudit := false
	for _, e := range entries {
		if m, ok := e.(map[string]any); ok && m["trace_id"] == traceA {
			inAudit = true
		}
	}
	if !inAudit {
		t.Fatalf("no audit entry carries trace %s: %s", traceA, logs.raw)
	}
	// Every service involved logged a line with the trace id.
	if missing := logsWith(t, dataDir, traceA, "gateway", "base-a", "base-c"); len(missing) > 0 {
		t.Fatalf("no log line of %v carries trace %s", missing, traceA)
	}

	// The outbox: the broker refuses the gateway (its access revoked and
	// its connections closed), so the cpf.queried of a read waits in the
	// gateway's outbox; once the broker takes the gateway back, the relay
	// publishes it in the trace of the read that wrote it.
	ctl := stores.RabbitCtl
	if len(ctl) == 0 {
		t.Fatal("rabbitmqctl of the test broker is unknown")
	}
	gwURL, _ := url.Parse(pl.BrokerURL("gateway"))
	gwUser := gwURL.User.Username()
	rabbit := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, ctl[0], append(append([]string{}, ctl[1:]...), args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	var perms [][]string // vhost, configure, write, read
	for _, line := range strings.Split(strings.TrimSpace(rabbit("list_user_permissions", "-q", "--no-table-headers", gwUser)), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 4 {
			perms = append(perms, f)
		}
	}
	if len(perms) == 0 {
		t.Fatalf("no permissions listed for %s", gwUser)
	}
	for _, p := range perms {
		rabbit("clear_permissions", "-p", p[0], gwUser)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			for _, p := range perms {
				rabbit("set_permissions", "-p", p[0], gwUser, p[1], p[2], p[3])
			}
		}
	}
	defer restore()
	for _, line := range strings.Split(rabbit("list_connections", "-q", "--no-table-headers", "pid", "user"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == gwUser {
			rabbit("close_connection", f[0], "trace test: broker outage for the gateway")
		}
	}

	const traceB = "5a7e0000c0ffee0000000000000000b2"
	// The demo activity arrives over AMQP (seeded at start): read until
	// the CPF is known (only a found CPF emits cpf.queried).
	for i := 0; ; i++ {
		r := c.do("GET", "/v1/activity/52998224725", "", "X-Api-Key", key, "Authorization", "Basic "+b64(env["STRATA_BASEC_USER"]+":"+env["STRATA_BASEC_PASSWORD"]),
			"Traceparent", "00-"+traceB+"-3333333333333333-01")
		if r.status == http.StatusOK {
			break
		}
		if (r.status != http.StatusNotFound && r.status != http.StatusTooManyRequests) || i == 100 { // 429: a cold Argon2id check that missed the deadline on a loaded machine
			r.want(t, 200, "")
		}
		time.Sleep(100 * time.Millisecond)
	}
	gw := gatewayDB(t, ctx, dataDir, cfg.DatabaseName("strata_gateway"))
	defer gw.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := gw.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = 'cpf.queried' AND traceparent LIKE '00-' || $1 || '-%'`, traceB).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read's cpf.queried never reached the gateway's outbox during the outage")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := find(recv.trace(traceB), func(s span) bool { return s.kind == tracepb.Span_SPAN_KIND_CONSUMER }); ok {
		t.Fatal("an event was consumed while the broker refused the gateway")
	}
	restore()
	got = recv.waitTrace(t, traceB, map[string]func(span) bool{
		"gateway HTTP span": func(s span) bool {
			return s.service == "gateway" && s.kind == tracepb.Span_SPAN_KIND_SERVER && s.name == "GET /v1/activity/{cpf}" && s.parent == "3333333333333333"
		},
		"relayed publish of cpf.queried": func(s span) bool {
			return s.service == "gateway" && s.kind == tracepb.Span_SPAN_KIND_PRODUCER && s.name == "publish cpf.queried" && s.attrs["error.type"] == ""
		},
		"Base C consumer span": func(s span) bool {
			return s.service == "base-c" && s.kind == tracepb.Span_SPAN_KIND_CONSUMER && s.name == "process cpf.queried"
		},
	})
	var ok bool
	consume = got["Base C consumer span"]
	// The failed first publish also matched above; the relayed one (the
	// consumer's parent) may reach the receiver a moment later.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if pub, ok = find(recv.trace(traceB), func(s span) bool { return s.id == consume.parent }); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer's parent never arrived:%s", describe(recv.trace(traceB)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if pub.kind != tracepb.Span_SPAN_KIND_PRODUCER || pub.name != "publish cpf.queried" {
		t.Fatalf("the consumer's parent is not the relayed publish:%s", describe(recv.trace(traceB)))
	}
	if missing := logsWith(t, dataDir, traceB, "gateway", "base-c"); len(missing) > 0 {
		t.Fatalf("no log line of %v carries trace %s", missing, traceB)
	}

	// Every metric the dashboards and alerting rules read is one the
	// services export (scraped from their operator addresses, after the
	// traffic above).
	var ops []string
	for _, port := range []int{9080, 9101, 9201, 9202, 9301, 9302} {
		ops = append(ops, fmt.Sprintf("http://127.0.0.1:%d/metrics", port+cfg.PortOffset))
	}
	checkObservabilityNames(t, scrapeNames(t, ops...))
}

// gatewayDB connects to the gateway's database as its application role.
func gatewayDB(t *testing.T, ctx context.Context, dataDir, db string) *pgx.Conn {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(dataDir, "secrets", "gateway-app-db.password"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(testenv.PostgresAdminURL(t))
	u.User, u.Path = url.UserPassword("strata_gateway_app", strings.TrimSpace(string(pw))), "/"+db
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
