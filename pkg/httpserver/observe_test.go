package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-bureau/strata/pkg/httpserver"
	"github.com/strata-bureau/strata/pkg/logging"
)

func TestObserveContinuesTheCallersTraceAndLogsOneLinePerRequest(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var logs bytes.Buffer
	mux := http.NewServeMux()
	var inner trace.SpanContext
	mux.HandleFunc("GET /v1/people/{cpf}", func(w http.ResponseWriter, r *http.Request) {
		inner = trace.SpanContextFromContext(r.Context())
		httpserver.Note(r.Context(), "partner", "demo-bank")
		w.WriteHeader(http.StatusTeapot)
	})
	h := httpserver.Observe(mux, httpserver.ObserveOptions{
		Tracer: tp.Tracer("t"), Meter: mp.Meter("t"), Propagator: propagation.TraceContext{},
		Logger: logging.New(&logs, slog.LevelInfo, "gateway"),
		Route:  func(r *http.Request) string { _, p := mux.Handler(r); return p },
	})
	req := httptest.NewRequest(http.MethodGet, "/v1/people/52998224725?x=1", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("X-Api-Key", "sk_secret")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)

	if inner.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("handler did not continue the caller's trace: %s", inner.TraceID())
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("want 1 span, got %d", len(spans))
	}
	s := spans[0]
	if s.Name() != "GET /v1/people/{cpf}" || s.SpanKind() != trace.SpanKindServer || s.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %q kind %v parent %v", s.Name(), s.SpanKind(), s.Parent().SpanID())
	}
	attrs := map[string]string{}
	for _, a := range s.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["http.route"] != "/v1/people/{cpf}" || attrs["http.response.status_code"] != "418" || attrs["strata.partner"] != "demo-bank" {
		t.Fatalf("span attributes: %v", attrs)
	}
	line := logs.String()
	for _, leak := range []string{"52998224725", "sk_secret"} {
		if strings.Contains(line, leak) || strings.Contains(strings.Join(mapValues(attrs), " "), leak) {
			t.Fatalf("%q leaked into the span or the access log: %s %v", leak, line, attrs)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("want one JSON line, got %q", line)
	}
	if m["msg"] != "http request" || m["route"] != "/v1/people/{cpf}" || m["status"] != float64(418) || m["partner"] != "demo-bank" ||
		m["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || m["method"] != "GET" || m["duration_ms"] == nil {
		t.Fatalf("access line: %v", m)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != "http.server.request.duration" {
				continue
			}
			for _, dp := range mt.Data.(metricdata.Histogram[float64]).DataPoints {
				route, _ := dp.Attributes.Value("http.route")
				code, _ := dp.Attributes.Value("http.response.status_code")
				found = found || route.AsString() == "/v1/people/{cpf}" && code.AsInt64() == 418 && dp.Count == 1
			}
		}
	}
	if !found {
		t.Fatalf("no http.server.request.duration point for the route and status: %+v", rm)
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// A client's baggage stops at the edge (the services' propagator would
// carry it on every internal hop); its trace context is continued.
func TestObserveDropsTheClientsBaggage(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	var got baggage.Baggage
	var inner trace.SpanContext
	h := httpserver.Observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, inner = baggage.FromContext(r.Context()), trace.SpanContextFromContext(r.Context())
	}), httpserver.ObserveOptions{Tracer: tp.Tracer("t"),
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})})
	req := httptest.NewRequest(http.MethodGet, "/v1/profiles/52998224725", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("Baggage", "partner=someone-else,x-partner-id=rival-bank")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got.Len() != 0 {
		t.Fatalf("the client's baggage passed the edge: %s", got)
	}
	if inner.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("the caller's trace was not continued: %s", inner.TraceID())
	}
}
