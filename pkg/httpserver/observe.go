package httpserver

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// ObserveOptions for Observe.
type ObserveOptions struct {
	Tracer     trace.Tracer
	Meter      metric.Meter
	Propagator propagation.TextMapPropagator
	// Logger receives one access-log line per request ("http request").
	Logger *slog.Logger
	// Route names the route pattern that serves r ("GET /v1/people/{cpf}"),
	// never the path itself: paths hold CPFs. Empty: every request is
	// reported under "unmatched".
	Route func(r *http.Request) string
	// Skip, when it returns true, serves r with no span, metric or log
	// line (liveness probes).
	Skip func(r *http.Request) bool
}

// Observe wraps h so that every request
//   - continues the caller's trace when it sends a W3C traceparent (or
//     starts one) with a server span named after the route;
//   - is measured in http.server.request.duration (seconds; by method,
//     route and status: OTel HTTP semantic conventions);
//   - is written as one access-log line: method, route, status, duration,
//     the attributes handlers add with Note (the partner), and the
//     trace_id (the logger's handler adds it from the span).
//
// Neither the span nor the line holds the URL path, query or any header:
// paths carry CPFs and headers carry credentials.
func Observe(h http.Handler, o ObserveOptions) http.Handler {
	var dur metric.Float64Histogram
	if o.Meter != nil {
		dur, _ = o.Meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of HTTP server requests."),
			metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Skip != nil && o.Skip(r) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		route := "unmatched"
		if o.Route != nil {
			if p := o.Route(r); p != "" {
				route = p
			}
		}
		// A Go pattern may start with a method and a host; http.route is
		// the path template.
		if i := strings.IndexByte(route, '/'); i > 0 {
			route = route[i:]
		}
		method := r.Method
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		default:
			method = "_OTHER" // bounded cardinality (semantic conventions)
		}
		ctx := r.Context()
		if o.Propagator != nil {
			// The trace context only: baggage a client sends is its own
			// text, which the services' propagator would otherwise carry
			// on every internal hop behind this edge.
			ctx = baggage.ContextWithoutBaggage(o.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header)))
		}
		notes := &notes{}
		ctx = context.WithValue(ctx, notesKey{}, notes)
		var span trace.Span
		if o.Tracer != nil {
			ctx, span = o.Tracer.Start(ctx, method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(route),
					semconv.URLScheme(scheme(r)), semconv.NetworkProtocolVersion(protocol(r))))
			defer span.End()
		}
		rw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(rw, r.WithContext(ctx))
		status := rw.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status)}
		if status >= 500 {
			attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		}
		if dur != nil {
			dur.Record(ctx, elapsed.Seconds(), metric.WithAttributes(attrs...))
		}
		if span != nil {
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		line := make([]any, 0, 10)
		line = append(line, "method", method, "route", route, "status", status, "duration_ms", float64(elapsed.Microseconds())/1000)
		notes.mu.Lock()
		for _, a := range notes.attrs {
			line = append(line, a)
		}
		notes.mu.Unlock()
		o.Logger.InfoContext(ctx, "http request", line...)
	})
}

type notesKey struct{}

type notes struct {
	mu    sync.Mutex
	attrs []slog.Attr
}

// Note adds key=value to the request's access-log line and server span
// (the partner that was authenticated, for example). It must never be
// given a credential or personal data. Outside Observe it does nothing.
func Note(ctx context.Context, key, value string) {
	n, ok := ctx.Value(notesKey{}).(*notes)
	if !ok {
		return
	}
	n.mu.Lock()
	n.attrs = append(n.attrs, slog.String(key, value))
	n.mu.Unlock()
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("strata."+key, value))
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func protocol(r *http.Request) string {
	switch {
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMajor == 3:
		return "3"
	}
	return "1.1"
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush implements http.Flusher when the underlying writer does.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		if s.status == 0 {
			s.status = http.StatusOK
		}
		f.Flush()
	}
}
