package config

// OTel is the part of the standard OpenTelemetry environment a service
// acts on (telemetry.Setup): the OTEL_* names every OpenTelemetry SDK
// reads, without the service's prefix. Service carries it and Load reads
// it, so every service honours it through its embedded Service.
type OTel struct {
	// ServiceName (OTEL_SERVICE_NAME) replaces the service's own name.
	ServiceName string
	// TracesExporter (OTEL_TRACES_EXPORTER): otlp, console or none.
	TracesExporter string
	// OTLPEndpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): set alone, it selects otlp.
	OTLPEndpoint string
	// Sampler (OTEL_TRACES_SAMPLER, with OTEL_TRACES_SAMPLER_ARG): when
	// set, the SDK builds the sampler it names.
	Sampler string
	// ResourceAttributes (OTEL_RESOURCE_ATTRIBUTES), e.g.
	// service.instance.id=base-b-1.
	ResourceAttributes string
}

// LoadOTel reads the OTEL_* variables OTel holds (no service prefix: they
// are the standard names).
func LoadOTel(l Lookuper) OTel {
	get := func(k string) string {
		if l == nil {
			return ""
		}
		v, _ := l.Lookup(k)
		return v
	}
	endpoint := get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	return OTel{
		ServiceName:        get("OTEL_SERVICE_NAME"),
		TracesExporter:     get("OTEL_TRACES_EXPORTER"),
		OTLPEndpoint:       endpoint,
		Sampler:            get("OTEL_TRACES_SAMPLER"),
		ResourceAttributes: get("OTEL_RESOURCE_ATTRIBUTES"),
	}
}

// Tracing reports whether this environment asks for spans to be exported.
func (e OTel) Tracing() bool {
	switch e.TracesExporter {
	case "none":
		return false
	case "":
		return e.OTLPEndpoint != ""
	}
	return true
}
