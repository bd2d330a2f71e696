package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/config"
)

type sample struct {
	Addr     string        `env:"ADDR, default=127.0.0.1:9000"`
	Timeout  time.Duration `env:"TIMEOUT, default=2s"`
	Password config.Secret `env:"PASSWORD, required"`
	Replicas int           `env:"REPLICAS, default=1"`
}

func (s *sample) Validate() error {
	if s.Replicas < 1 {
		return errors.New("REPLICAS must be at least 1")
	}
	return nil
}

func TestLoadUsesPrefixDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, s sample)
	}{
		{
			name: "defaults",
			env:  map[string]string{"SVC_PASSWORD": "hunter22"},
			check: func(t *testing.T, s sample) {
				if s.Addr != "127.0.0.1:9000" || s.Timeout != 2*time.Second || s.Replicas != 1 {
					t.Fatalf("defaults not applied: %+v", s)
				}
				if s.Password.Reveal() != "hunter22" {
					t.Fatalf("password not loaded")
				}
			},
		},
		{
			name:    "prefix is required",
			env:     map[string]string{"PASSWORD": "hunter22"},
			wantErr: "SVC_PASSWORD",
		},
		{
			name:    "validation runs",
			env:     map[string]string{"SVC_PASSWORD": "x", "SVC_REPLICAS": "0"},
			wantErr: "REPLICAS must be at least 1",
		},
		{
			name:    "bad duration",
			env:     map[string]string{"SVC_PASSWORD": "x", "SVC_TIMEOUT": "soon"},
			wantErr: "SVC_TIMEOUT: ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s sample
			err := config.Load(context.Background(), "SVC_", &s, config.Map(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := struct{ P config.Secret }{P: "top-secret-value"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "secret", s.P, "struct", s)
	j, _ := json.Marshal(s)
	outs := []string{buf.String(), string(j), fmt.Sprintf("%v %+v %#v %s", s, s, s, s.P)}
	for _, out := range outs {
		if strings.Contains(out, "top-secret-value") {
			t.Fatalf("secret leaked: %s", out)
		}
	}
	if s.P.Reveal() != "top-secret-value" {
		t.Fatal("Reveal lost the value")
	}
}

func TestSecretsFromFiles(t *testing.T) {
	t.Parallel()
	type cfg struct {
		Password config.Secret `env:"PASSWORD, required"`
		Token    config.Secret `env:"TOKEN"`
		Name     string        `env:"NAME"`
		// Declares its own _FILE: left to the configuration.
		Other     config.Secret `env:"OTHER"`
		OtherFile string        `env:"OTHER_FILE"`
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw, other := write("pw", "s3cret-from-file\n"), write("other", "x")
	var c cfg
	if err := config.Load(context.Background(), "T_", &c, config.Map(map[string]string{
		"T_PASSWORD_FILE": pw, "T_NAME_FILE": pw, "T_OTHER_FILE": other})); err != nil {
		t.Fatal(err)
	}
	if c.Password.Reveal() != "s3cret-from-file" || c.Name != "" || !c.Other.IsZero() || c.OtherFile != other {
		t.Fatalf("%+v (password %q)", c, c.Password.Reveal())
	}
	// Both set, or an unreadable file: an error that names the variable, never the value.
	err := config.Load(context.Background(), "T_", &c, config.Map(map[string]string{"T_PASSWORD": "inline-value", "T_PASSWORD_FILE": pw}))
	if err == nil || !strings.Contains(err.Error(), "PASSWORD_FILE") || strings.Contains(err.Error(), "inline-value") {
		t.Fatalf("both set: %v", err)
	}
	err = config.Load(context.Background(), "T_", &c, config.Map(map[string]string{"T_PASSWORD_FILE": filepath.Join(dir, "missing")}))
	if err == nil || !strings.Contains(err.Error(), "PASSWORD_FILE") {
		t.Fatalf("missing file: %v", err)
	}
}

type svcConfig struct {
	config.Service
	Clients config.List `env:"CLIENTS, default=gateway"`
}

func (c *svcConfig) Validate() error { return c.Service.Validate() }

// The shared part is embedded: its variables take the service's prefix,
// OpsAddr keeps the service's own default unless set, secrets in it may
// come from files, and lists are decoded by the library.
func TestEmbeddedServiceAndLists(t *testing.T) {
	t.Parallel()
	base := map[string]string{"SVC_TLS_CERT": "c", "SVC_TLS_KEY": "k", "SVC_TLS_CA": "ca", "SVC_AMQP_URL": "amqp://x"}
	load := func(extra map[string]string) (*svcConfig, error) {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		c := &svcConfig{Service: config.Service{OpsAddr: "127.0.0.1:9999"}}
		return c, config.Load(context.Background(), "SVC_", c, config.Map(m))
	}
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.OpsAddr != "127.0.0.1:9999" || c.Exchange != "strata.events" || c.LogLevelName() != "info" || c.AMQPURL.Reveal() != "amqp://x" {
		t.Fatalf("defaults: %+v", c)
	}
	if len(c.Clients) != 1 || c.Clients[0] != "gateway" {
		t.Fatalf("default list: %q", c.Clients)
	}
	c, err = load(map[string]string{"SVC_OPS_ADDR": "0.0.0.0:1", "SVC_CLIENTS": " a, b,,c ", "SVC_LOG_LEVEL": "debug"})
	if err != nil {
		t.Fatal(err)
	}
	if c.OpsAddr != "0.0.0.0:1" || strings.Join(c.Clients, "|") != "a|b|c" || c.LogLevel != "debug" {
		t.Fatalf("set: %+v", c)
	}
	if _, err := load(map[string]string{"SVC_OPS_ADDR": "nope"}); err == nil || !strings.Contains(err.Error(), "OPS_ADDR") {
		t.Fatalf("bad OPS_ADDR: %v", err)
	}
	file := filepath.Join(t.TempDir(), "amqp")
	if err := os.WriteFile(file, []byte("amqp://from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(base, "SVC_AMQP_URL")
	c, err = load(map[string]string{"SVC_AMQP_URL_FILE": file})
	if err != nil || c.AMQPURL.Reveal() != "amqp://from-file" {
		t.Fatalf("embedded secret from a file: %v %q", err, c.AMQPURL.Reveal())
	}
}

// pair is a setting with a grammar of its own ("a=b"), decoded by the
// library through encoding.TextUnmarshaler, as amqp.Producers and the
// gateway's trusted proxies are.
type pair []string

func (p *pair) UnmarshalText(b []byte) error {
	k, v, ok := strings.Cut(string(b), "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", b)
	}
	*p = pair{k, v}
	return nil
}

// A malformed value of a decoded setting stops the load with an error that
// names the variable (not the Go field) and says what is wrong, in the
// service's own fields and in the embedded Service alike.
func TestDecodedSettingsNameTheVariable(t *testing.T) {
	t.Parallel()
	type cfg struct {
		config.Service
		Pair    pair          `env:"PAIR, default=a=b"`
		Timeout time.Duration `env:"TIMEOUT, default=1s"`
	}
	load := func(extra map[string]string) (*cfg, error) {
		m := map[string]string{"SVC_TLS_CERT": "c", "SVC_TLS_KEY": "k", "SVC_TLS_CA": "ca", "SVC_AMQP_URL": "amqp://x"}
		for k, v := range extra {
			m[k] = v
			if v == "" {
				delete(m, k)
			}
		}
		c := &cfg{Service: config.Service{OpsAddr: "127.0.0.1:9999"}}
		return c, config.Load(context.Background(), "SVC_", c, config.Map(m))
	}
	c, err := load(nil)
	if err != nil || strings.Join(c.Pair, "|") != "a|b" {
		t.Fatalf("default: %+v %v", c, err)
	}
	if c, err = load(map[string]string{"SVC_PAIR": "x=y"}); err != nil || strings.Join(c.Pair, "|") != "x|y" {
		t.Fatalf("set: %+v %v", c, err)
	}
	for env, want := range map[string]string{
		"SVC_PAIR":    `config (SVC_*): SVC_PAIR: "nonsense" is not key=value`,
		"SVC_TIMEOUT": `config (SVC_*): SVC_TIMEOUT: `,
	} {
		_, err := load(map[string]string{env: "nonsense"})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s=nonsense: want %q, got %v", env, want, err)
		}
	}
	// Through the embedded Service: its variables keep the prefix (unset).
	_, err = load(map[string]string{"SVC_TLS_CERT": ""})
	if err == nil || !strings.Contains(err.Error(), "SVC_TLS_CERT: missing required value") {
		t.Fatalf("embedded required: %v", err)
	}
}

// The gRPC and Mongo parts keep the default a service sets before Load
// unless the variable is set, and a bad GRPC_ADDR is refused.
func TestEmbeddedGRPCAndMongo(t *testing.T) {
	t.Parallel()
	type cfg struct {
		config.GRPC
		config.Mongo
	}
	load := func(m map[string]string) (*cfg, error) {
		c := &cfg{GRPC: config.GRPC{GRPCAddr: "127.0.0.1:7000"}, Mongo: config.Mongo{MongoDatabase: "strata_x"}}
		return c, config.Load(context.Background(), "SVC_", c, config.Map(m))
	}
	c, err := load(map[string]string{"SVC_MONGODB_URI": "mongodb://x"})
	if err != nil || c.GRPCAddr != "127.0.0.1:7000" || c.MongoDatabase != "strata_x" || c.GRPCReflection || c.MongoURI.Reveal() != "mongodb://x" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = load(map[string]string{"SVC_MONGODB_URI": "mongodb://x", "SVC_GRPC_ADDR": "0.0.0.0:1", "SVC_MONGODB_DATABASE": "other", "SVC_GRPC_REFLECTION": "true"})
	if err != nil || c.GRPCAddr != "0.0.0.0:1" || c.MongoDatabase != "other" || !c.GRPCReflection {
		t.Fatalf("set: %+v %v", c, err)
	}
	if errs := config.Errors(&c.GRPC); errs != nil {
		t.Fatal(errs)
	}
	if _, err := load(map[string]string{}); err == nil || !strings.Contains(err.Error(), "SVC_MONGODB_URI: missing required value") {
		t.Fatalf("no MONGODB_URI: %v", err)
	}
	errs := config.Errors(&config.Service{OpsAddr: "x"}, &config.GRPC{GRPCAddr: "127.0.0.1:1"}, &config.GRPC{GRPCAddr: "nope"})
	if len(errs) != 2 || errs[0].Error() != "OPS_ADDR must be host:port" || errs[1].Error() != "GRPC_ADDR must be host:port" {
		t.Fatalf("bad OPS_ADDR and GRPC_ADDR: %v", errs)
	}
}

// Defaults fills what is still zero from the tags and keeps what is set;
// a required field left zero is named.
func TestDefaultsFillOnlyZeroFields(t *testing.T) {
	t.Parallel()
	s := sample{Password: "set", Replicas: 3}
	if err := config.Defaults(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Addr != "127.0.0.1:9000" || s.Timeout != 2*time.Second || s.Replicas != 3 || s.Password.Reveal() != "set" {
		t.Fatalf("%+v", s)
	}
	if err := config.Defaults(context.Background(), &sample{}); err == nil || !strings.Contains(err.Error(), "PASSWORD") {
		t.Fatalf("required left zero: %v", err)
	}
}

// The standard OTEL_* names are read without the service's prefix; a
// prefixed one is not the standard variable.
func TestLoadOTelReadsTheStandardNames(t *testing.T) {
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
		if got := config.LoadOTel(config.Map(tt.env)).Tracing(); got != tt.tracing {
			t.Errorf("%v: tracing %v, want %v", tt.env, got, tt.tracing)
		}
	}
	// Load reads them into the Service a configuration embeds.
	c := &svcConfig{Service: config.Service{OpsAddr: "127.0.0.1:9999"}}
	err := config.Load(context.Background(), "SVC_", c, config.Map(map[string]string{"SVC_TLS_CERT": "c", "SVC_TLS_KEY": "k",
		"SVC_TLS_CA": "ca", "SVC_AMQP_URL": "amqp://x", "OTEL_SERVICE_NAME": "svc-1", "SVC_OTEL_TRACES_EXPORTER": "console"}))
	if err != nil || c.OTel.ServiceName != "svc-1" || c.OTel.TracesExporter != "" {
		t.Fatalf("Service.OTel: %+v %v", c.OTel, err)
	}
}
