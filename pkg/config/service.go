package config

import (
	"errors"
	"net"
	"strings"
)

// Service is the configuration every service shares: the operator
// address, its mTLS material, the broker, logging and telemetry (its own
// OTLP_ENDPOINT and the standard OTEL_* environment). Each
// service's Config embeds it, so its variables keep the service's prefix
// (BASEB_AMQP_URL, GATEWAY_LOG_LEVEL, …). OpsAddr's default differs per
// service: a service sets it in the Config it hands to Load, and the
// variable, when set, overwrites it.
type Service struct {
	// OpsAddr serves /metrics, the detailed /readyz and pprof: never the
	// partners' port.
	OpsAddr string `env:"OPS_ADDR, overwrite"`
	// TLSCert and TLSKey are this service's certificate (its identity on
	// every mTLS hop); TLSCA is the CA its peers chain to.
	TLSCert string `env:"TLS_CERT, required"`
	TLSKey  string `env:"TLS_KEY, required"`
	TLSCA   string `env:"TLS_CA, required"`
	// AMQPURL is the broker (amqp:// or amqps://); AMQPCA the CA bundle of
	// its certificate; Exchange the topic exchange (override only in tests).
	AMQPURL  Secret `env:"AMQP_URL, required"`
	AMQPCA   string `env:"AMQP_CA"`
	Exchange string `env:"AMQP_EXCHANGE, default=strata.events"`
	LogLevel string `env:"LOG_LEVEL, default=info"`
	// OTLPEndpoint, when set, exports traces there (the standard OTEL_*
	// variables work too).
	OTLPEndpoint string `env:"OTLP_ENDPOINT"`
	// OTel is the standard OpenTelemetry environment (OTEL_*, without the
	// service's prefix), read by Load.
	OTel OTel
}

// service gives Load the Service a configuration embeds.
func (s *Service) service() *Service { return s }

// LogLevelName is the configured log level (for pkg/command).
func (s *Service) LogLevelName() string { return s.LogLevel }

// Validate checks the shared part; each service's Validate calls it.
func (s *Service) Validate() error {
	if _, _, err := net.SplitHostPort(s.OpsAddr); err != nil {
		return errors.New("OPS_ADDR must be host:port")
	}
	return nil
}

// List is a comma-separated list decoded by envconfig: items are trimmed,
// empty ones dropped ("a, b,,c" is [a b c]).
type List []string

// EnvDecode implements envconfig.Decoder.
func (l *List) EnvDecode(v string) error {
	*l = nil
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// GRPC is what every base's gRPC server is configured with. Each base sets
// its default GRPCAddr in the Config it hands to Load (as OpsAddr); the
// variable, when set, overwrites it.
type GRPC struct {
	GRPCAddr string `env:"GRPC_ADDR, overwrite"`
	// GRPCReflection lists the API by gRPC reflection (off in production).
	GRPCReflection bool `env:"GRPC_REFLECTION, default=false"`
}

// Validate checks the gRPC address; each base's Validate calls it.
func (g *GRPC) Validate() error {
	if _, _, err := net.SplitHostPort(g.GRPCAddr); err != nil {
		return errors.New("GRPC_ADDR must be host:port")
	}
	return nil
}

// Mongo is the store of a service on the Mongo wire protocol (Base B and
// C, and their tools). Each sets its default MongoDatabase in the Config
// it hands to Load; the variable, when set, overwrites it.
type Mongo struct {
	MongoURI      Secret `env:"MONGODB_URI, required"`
	MongoDatabase string `env:"MONGODB_DATABASE, overwrite"`
}
