package telemetry_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/telemetry"
)

func TestLoadEnvReadsTheStandardNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env     map[string]string
		tracing bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"BASEA_OTEL_TRACES_EXPORTER": "console"}, false},
	}
	for _, tt := range tests {
		if got := telemetry.LoadEnv(config.Map(tt.env)).Tracing(); got != tt.tracing {
			t.Errorf("%v: tracing %v, want %v", tt.env, got, tt.tracing)
		}
	}
}

func TestConsoleExporterWritesSpansWithTheServiceName(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	env := telemetry.LoadEnv(config.Map(map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "renamed"}))
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "svc", Env: env, Console: &buf})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.Tracer("t").Start(context.Background(), "op")
	tid := span.SpanContext().TraceID().String()
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, tid) || !strings.Contains(out, `"renamed"`) {
		t.Fatalf("console output lacks the span or the service name:\n%s", out)
	}
}

func TestWithoutExporterSpansAreNotRecordedButHaveTraceIDs(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.Tracer("t").Start(context.Background(), "op")
	defer span.End()
	if span.IsRecording() || !span.SpanContext().TraceID().IsValid() {
		t.Fatalf("recording %v, trace id valid %v", span.IsRecording(), span.SpanContext().TraceID().IsValid())
	}
}
