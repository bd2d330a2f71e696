// Package telemetry sets up OpenTelemetry for one service: a tracer provider
// (exporting over OTLP/gRPC when an endpoint is configured), a meter
// provider read by a Prometheus exporter served at /metrics, and the W3C
// trace-context propagator. Nothing is installed globally: callers pass the
// returned providers to the instrumentation they construct.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Config says how to export.
type Config struct {
	// ServiceName names the service in traces and metrics.
	ServiceName string
	// OTLPEndpoint is host:port of an OTLP/gRPC collector; empty records no
	// spans (trace context is still propagated).
	OTLPEndpoint string
	// OTLPInsecure disables TLS to the collector.
	OTLPInsecure bool
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
	res := resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))

	ratio := cfg.SampleRatio
	if ratio <= 0 {
		ratio = 1
	}
	// Without an exporter nothing would ever read a span: record none (trace
	// context still propagates, so trace IDs reach logs and audit entries).
	sampler := sdktrace.NeverSample()
	if cfg.OTLPEndpoint != "" {
		sampler = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
	}
	if cfg.OTLPEndpoint != "" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
		if cfg.OTLPInsecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		te, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(te))
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
