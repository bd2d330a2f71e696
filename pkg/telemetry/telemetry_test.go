package telemetry_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/telemetry"
)

func TestConsoleExporterWritesSpansWithTheServiceName(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	env := config.LoadOTel(config.Map(map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "renamed"}))
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
