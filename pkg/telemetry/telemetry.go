// Package telemetry sets up OpenTelemetry for one service: a tracer provider
// configured by the standard OpenTelemetry environment (OTEL_TRACES_EXPORTER
// otlp, console or none; OTEL_EXPORTER_OTLP_*; OTEL_SERVICE_NAME;
// OTEL_TRACES_SAMPLER), a meter provider read by a Prometheus exporter
// served at /metrics, and the W3C trace-context propagator. Nothing is
// installed globally: callers pass the returned providers to the
// instrumentation they construct.
//
// Only main reads the process environment: the service's configuration
// (config.Load) reads the standard variables into config.OTel, and Setup
// decides from it whether spans are recorded. The
// exporter itself is built by go.opentelemetry.io/contrib/exporters/autoexport,
// which reads the OTEL_EXPORTER_OTLP_* details (endpoint, protocol,
// headers, TLS) as every OpenTelemetry SDK does.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-bureau/strata/pkg/config"
)

// Config says how to export.
type Config struct {
	// ServiceName names the service in traces and metrics.
	ServiceName string
	// Env is the standard OpenTelemetry environment (config.LoadOTel); it
	// wins over OTLPEndpoint.
	Env config.OTel
	// OTLPEndpoint is host:port of an OTLP/gRPC collector (the service's
	// older <PREFIX>OTLP_ENDPOINT); used only when Env selects no exporter.
	// With neither, no span is recorded (trace context still propagates,
	// so trace ids reach logs and audit entries).
	OTLPEndpoint string
	// OTLPInsecure disables TLS to the collector.
	OTLPInsecure bool
	// Console receives spans when OTEL_TRACES_EXPORTER=console (default
	// standard output).
	Console io.Writer
	// SampleRatio is the fraction of new traces sampled (parent-based).
	SampleRatio float64
}

// Telemetry holds the providers of one service.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// Registry is the Prometheus registry behind MetricsHandler.
	Registry *prometheus.Registry

	shutdowns []func(context.Context) error
}

// Setup builds the providers. Call Shutdown when the service stops.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		return nil, errors.New("telemetry: service name is required")
	}
	name := cfg.ServiceName
	if cfg.Env.ServiceName != "" {
		name = cfg.Env.ServiceName
	}
	res := resource.NewSchemaless(semconv.ServiceName(name))
	if cfg.Env.ResourceAttributes != "" {
		// OTEL_RESOURCE_ATTRIBUTES, e.g. service.instance.id of a replica;
		// the service name set above wins.
		if fromEnv, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
			if merged, err := resource.Merge(fromEnv, res); err == nil {
				res = merged
			}
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))

	spans, err := spanExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	switch {
	case spans == nil:
		// Without an exporter nothing would ever read a span: record none
		// (trace context still propagates, so trace IDs reach logs and
		// audit entries).
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.NeverSample()))
	case cfg.Env.Sampler != "":
		// The SDK builds the sampler OTEL_TRACES_SAMPLER names.
	default:
		ratio := cfg.SampleRatio
		if ratio <= 0 {
			ratio = 1
		}
		tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	}
	if spans != nil {
		tpOpts = append(tpOpts, sdktrace.WithBatcher(spans))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	return &Telemetry{
		TracerProvider: tp,
		MeterProvider:  mp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Registry:       reg,
		shutdowns:      []func(context.Context) error{tp.Shutdown, mp.Shutdown},
	}, nil
}

// spanExporter builds the exporter cfg asks for: console, what the
// standard environment selects (autoexport), the service's older OTLP
// endpoint, or none (nil).
func spanExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	var spans sdktrace.SpanExporter
	var err error
	switch {
	case cfg.Env.TracesExporter == "console":
		// One JSON line per span on the service's output, beside its logs.
		w := cfg.Console
		if w == nil {
			w = os.Stdout
		}
		spans, err = stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("telemetry: console exporter: %w", err)
		}
	case cfg.Env.Tracing():
		// otlp (http/protobuf unless OTEL_EXPORTER_OTLP_PROTOCOL=grpc) or
		// console, configured by the OTEL_EXPORTER_OTLP_* variables.
		spans, err = autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER: %w", err)
		}
	case cfg.Env.TracesExporter == "" && cfg.OTLPEndpoint != "":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
		if cfg.OTLPInsecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		spans, err = otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
	}
	return spans, nil
}

// Noop returns telemetry that records nothing, for tests and tools.
func Noop() *Telemetry {
	t, err := Setup(context.Background(), Config{ServiceName: "noop"})
	if err != nil {
		// Setup only fails on exporter construction, which has no inputs here.
		return &Telemetry{Propagator: propagation.TraceContext{}, Registry: prometheus.NewRegistry()}
	}
	return t
}

// Meter returns a named meter.
func (t *Telemetry) Meter(name string) metric.Meter { return t.MeterProvider.Meter(name) }

// Tracer returns a named tracer.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// MetricsHandler serves the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdowns {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
