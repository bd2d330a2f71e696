package app_test

import (
	"context"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/services/gateway/app"
)

func TestLoadReadsTheStandardOpenTelemetryEnvironment(t *testing.T) {
	t.Parallel()
	cfg, err := app.Load(context.Background(), config.Map(map[string]string{
		"GATEWAY_DATABASE_URL": "postgres://x", "GATEWAY_KEY_PEPPER": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
		"GATEWAY_ISSUER_ENABLED": "false", "GATEWAY_TLS_CERT": "c", "GATEWAY_TLS_KEY": "k", "GATEWAY_TLS_CA": "a", "GATEWAY_AMQP_URL": "amqp://x",
		"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "gw-1", "GATEWAY_OTEL_SERVICE_NAME": "ignored",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OTel.TracesExporter != "console" || cfg.OTel.ServiceName != "gw-1" || !cfg.OTel.Tracing() {
		t.Fatalf("OTEL_* not read: %+v", cfg.OTel)
	}
}
