package app

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TraceViewer is the local stack's trace viewer (STRATA_TRACE_VIEWER=1
// make run): an OTLP/HTTP receiver (POST /v1/traces, protobuf, what every
// service's exporter sends with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)
// and a page per trace, kept in memory (the newest MaxSpans spans). It is
// a developer's tool for one machine, not a tracing backend: production
// sends OTLP to its own collector.
type TraceViewer struct {
	// MaxSpans bounds what is kept (default 50,000; the oldest go first).
	MaxSpans int
	mu       sync.Mutex
	spans    []ViewSpan
}

// ViewSpan is one received span.
type ViewSpan struct {
	Service, Instance, Name, Kind string
	TraceID, SpanID, Parent       string
	Start                         time.Time
	Duration                      time.Duration
	Error                         bool
	Attrs                         []string // key=value, sorted
	Depth                         int      // in its trace's tree (set when shown)
}

// maxOTLPBody caps one export request (the SDK batches 512 spans).
const maxOTLPBody = 16 << 20

// Add keeps the spans of one OTLP export request.
func (v *TraceViewer) Add(ex *coltracepb.ExportTraceServiceRequest) {
	var in []ViewSpan
	for _, rs := range ex.GetResourceSpans() {
		var service, instance string
		for _, a := range rs.GetResource().GetAttributes() {
			switch a.GetKey() {
			case "service.name":
				service = a.GetValue().GetStringValue()
			case "service.instance.id":
				instance = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				vs := ViewSpan{Service: service, Instance: instance, Name: s.GetName(),
					Kind:    strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_"),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Parent: hex.EncodeToString(s.GetParentSpanId()),
					Start:  time.Unix(0, int64(s.GetStartTimeUnixNano())).UTC(),
					Error:  s.GetStatus().GetCode() == 2, // STATUS_CODE_ERROR
				}
				if end := s.GetEndTimeUnixNano(); end > s.GetStartTimeUnixNano() {
					vs.Duration = time.Duration(end - s.GetStartTimeUnixNano())
				}
				for _, a := range s.GetAttributes() {
					vs.Attrs = append(vs.Attrs, a.GetKey()+"="+anyValue(a.GetValue().String()))
				}
				sort.Strings(vs.Attrs)
				in = append(in, vs)
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	limit := v.MaxSpans
	if limit <= 0 {
		limit = 50_000
	}
	v.spans = append(v.spans, in...)
	if over := len(v.spans) - limit; over > 0 {
		v.spans = append(v.spans[:0:0], v.spans[over:]...)
	}
}

// anyValue turns an AnyValue's text form (string_value:"x") into x.
func anyValue(s string) string {
	_, val, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	return strings.Trim(strings.TrimSpace(val), `"`)
}

// Trace is the spans of traceID, parents before children, each with its
// depth in the tree; spans whose parent was not received are roots.
func (v *TraceViewer) Trace(traceID string) []ViewSpan {
	v.mu.Lock()
	var spans []ViewSpan
	for _, s := range v.spans {
		if s.TraceID == traceID {
			spans = append(spans, s)
		}
	}
	v.mu.Unlock()
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	ids := map[string]bool{}
	children := map[string][]ViewSpan{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	var roots []ViewSpan
	for _, s := range spans {
		if s.Parent == "" || !ids[s.Parent] {
			roots = append(roots, s)
		} else {
			children[s.Parent] = append(children[s.Parent], s)
		}
	}
	var out []ViewSpan
	var walk func(s ViewSpan, depth int)
	walk = func(s ViewSpan, depth int) {
		s.Depth = depth
		out = append(out, s)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return out
}

// TraceSummary is one line of the viewer's front page.
type TraceSummary struct {
	TraceID, Root string
	Services      []string
	Spans         int
	Start         time.Time
	Duration      time.Duration
	Error         bool
}

// Recent lists the newest n traces, newest first.
func (v *TraceViewer) Recent(n int) []TraceSummary {
	v.mu.Lock()
	defer v.mu.Unlock()
	byID := map[string]*TraceSummary{}
	services := map[string]map[string]bool{}
	end, rooted := map[string]time.Time{}, map[string]bool{}
	for _, s := range v.spans {
		t := byID[s.TraceID]
		if t == nil {
			t = &TraceSummary{TraceID: s.TraceID, Start: s.Start}
			byID[s.TraceID], services[s.TraceID] = t, map[string]bool{}
		}
		t.Spans++
		t.Error = t.Error || s.Error
		if s.Start.Before(t.Start) {
			t.Start = s.Start
		}
		// The root: the first span without a parent (the first span
		// received until one arrives).
		if t.Root == "" || s.Parent == "" && !rooted[s.TraceID] {
			t.Root = s.Service + ": " + s.Name
			rooted[s.TraceID] = s.Parent == ""
		}
		if e := s.Start.Add(s.Duration); e.After(end[s.TraceID]) {
			end[s.TraceID] = e
		}
		services[s.TraceID][s.Service] = true
	}
	out := make([]TraceSummary, 0, len(byID))
	for id, t := range byID {
		t.Duration = end[id].Sub(t.Start)
		for s := range services[id] {
			t.Services = append(t.Services, s)
		}
		sort.Strings(t.Services)
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

var viewerPages = template.Must(template.New("list").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Strata traces</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left}.err{color:#b00}code{font-size:12px}</style></head><body>
<h1>Strata traces (newest first)</h1><p>Follow one request: send it with a <code>traceparent</code> header, or find its <code>trace_id</code> in any service's log line, then open <code>/traces/&lt;trace id&gt;</code>.</p>
<table><tr><th>trace</th><th>root span</th><th>services</th><th>spans</th><th>duration</th><th>start (UTC)</th></tr>
{{range .}}<tr{{if .Error}} class="err"{{end}}><td><a href="/traces/{{.TraceID}}"><code>{{.TraceID}}</code></a></td><td>{{.Root}}</td><td>{{range $i, $s := .Services}}{{if $i}}, {{end}}{{$s}}{{end}}</td><td>{{.Spans}}</td><td>{{.Duration}}</td><td>{{.Start.Format "15:04:05.000"}}</td></tr>
{{end}}</table></body></html>`))

var viewerTrace = template.Must(template.New("trace").Funcs(template.FuncMap{"indent": func(d int) string { return strings.Repeat("  ", d) }}).Parse(`<!doctype html><html><head><meta charset="utf-8"><title>trace {{.ID}}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}pre{font-size:12px}.err{color:#b00}</style></head><body>
<p><a href="/">all traces</a></p><h1>trace <code>{{.ID}}</code></h1>{{if not .Spans}}<p>No span of this trace has been received (yet).</p>{{end}}
<pre>{{range .Spans}}<span{{if .Error}} class="err"{{end}}>{{indent .Depth}}{{.Service}}{{if .Instance}} [{{.Instance}}]{{end}} {{.Kind}} {{.Name}}  {{.Duration}}{{if .Error}}  ERROR{{end}}</span>
{{indent .Depth}}    {{range .Attrs}}{{.}}  {{end}}
{{end}}</pre></body></html>`))

// Handler serves OTLP/HTTP at POST /v1/traces and the pages.
func (v *TraceViewer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = http.MaxBytesReader(w, r.Body, maxOTLPBody)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(body)
			if err != nil {
				http.Error(w, "bad gzip body", http.StatusBadRequest)
				return
			}
			body = io.LimitReader(zr, maxOTLPBody)
		}
		b, err := io.ReadAll(body)
		var ex coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &ex)
		}
		if err != nil {
			http.Error(w, "not an OTLP protobuf trace export", http.StatusBadRequest)
			return
		}
		v.Add(&ex)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = viewerPages.Execute(w, v.Recent(100))
	})
	mux.HandleFunc("GET /traces/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := strings.ToLower(r.PathValue("id"))
		if _, err := hex.DecodeString(id); err != nil || len(id) != 32 {
			http.Error(w, "a trace id is 32 hexadecimal digits", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = viewerTrace.Execute(w, struct {
			ID    string
			Spans []ViewSpan
		}{id, v.Trace(id)})
	})
	return mux
}

// StartTraceViewer serves v on addr until ctx ends.
func StartTraceViewer(ctx context.Context, addr string, v *TraceViewer) (string, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("trace viewer: %w", err)
	}
	srv := &http.Server{Handler: v.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }() // ends with ErrServerClosed when ctx ends
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return "http://" + lis.Addr().String(), nil
}
