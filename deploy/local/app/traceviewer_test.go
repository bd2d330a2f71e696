package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/strata-bureau/strata/deploy/local/app"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// The local trace viewer takes what an OTLP/HTTP exporter sends and shows
// one trace as a tree across services; it refuses what is not OTLP and
// keeps at most MaxSpans spans.
func TestTraceViewerShowsATraceAcrossServices(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := &app.TraceViewer{MaxSpans: 3}
	url, err := app.StartTraceViewer(ctx, "127.0.0.1:0", v)
	if err != nil {
		t.Fatal(err)
	}
	trace := bytes.Repeat([]byte{0xab}, 16)
	now := uint64(time.Now().UnixNano())
	export := func(service string, spans ...*tracepb.Span) int {
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", service)}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
		}}})
		resp, err := http.Post(url+"/v1/traces", "application/x-protobuf", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if c := export("gateway", &tracepb.Span{TraceId: trace, SpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1}, Name: "GET /v1/people/{cpf}",
		Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: now, EndTimeUnixNano: now + 5e6, Attributes: []*commonpb.KeyValue{str("http.route", "/v1/people/{cpf}")}}); c != 200 {
		t.Fatalf("export: %d", c)
	}
	if c := export("base-a", &tracepb.Span{TraceId: trace, SpanId: []byte{2, 2, 2, 2, 2, 2, 2, 2}, ParentSpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1},
		Name: "basea.v1.PeopleService/GetPerson", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: now + 1e6, EndTimeUnixNano: now + 4e6}); c != 200 {
		t.Fatalf("export: %d", c)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	id := strings.Repeat("ab", 16)
	if c, page := get("/"); c != 200 || !strings.Contains(page, id) || !strings.Contains(page, "base-a, gateway") || !strings.Contains(page, "GET /v1/people/{cpf}") {
		t.Fatalf("front page: %d %s", c, page)
	}
	c, page := get("/traces/" + id)
	if c != 200 || !strings.Contains(page, "gateway SERVER GET /v1/people/{cpf}") || !strings.Contains(page, "<span>  base-a SERVER basea.v1.PeopleService/GetPerson") ||
		!strings.Contains(page, "http.route=/v1/people/{cpf}") {
		t.Fatalf("trace page (base-a's span indented under the gateway's): %d %s", c, page)
	}
	if c, _ := get("/traces/not-a-trace-id"); c != http.StatusBadRequest {
		t.Fatalf("bad trace id: %d", c)
	}
	resp, err := http.Post(url+"/v1/traces", "application/x-protobuf", strings.NewReader("\xff\xff not protobuf"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("garbage export: %d", resp.StatusCode)
	}
	// Two more spans: the oldest goes (MaxSpans 3).
	other := bytes.Repeat([]byte{0xcd}, 16)
	export("base-c", &tracepb.Span{TraceId: other, SpanId: []byte{3, 3, 3, 3, 3, 3, 3, 3}, Name: "a", StartTimeUnixNano: now + 1e7},
		&tracepb.Span{TraceId: other, SpanId: []byte{4, 4, 4, 4, 4, 4, 4, 4}, Name: "b", StartTimeUnixNano: now + 2e7})
	if spans := v.Trace(id); len(spans) != 1 || spans[0].Service != "base-a" {
		t.Fatalf("after the cap: %+v", spans)
	}
}
