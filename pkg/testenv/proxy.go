package testenv

import (
	"context"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is a TCP proxy (Shopify toxiproxy, embedded) between a client under
// test and a real server, so tests can cut connections or add latency.
type Proxy struct {
	p *toxiproxy.Proxy
}

// NewProxy starts a proxy on a free loopback port in front of upstream
// (host:port); it stops when the test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, UniqueName(t, "proxy"), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("testenv: proxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{p: p}
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.p.Listen }

// CutConnections closes every open connection through the proxy; new
// connections are accepted again at once.
func (p *Proxy) CutConnections(t testing.TB) {
	t.Helper()
	p.p.Stop()
	if err := p.p.Start(); err != nil {
		t.Fatalf("testenv: proxy restart: %v", err)
	}
}

// Disable closes every connection and refuses new ones until Enable.
func (p *Proxy) Disable() { p.p.Stop() }

// Enable accepts connections again.
func (p *Proxy) Enable(t testing.TB) {
	t.Helper()
	if err := p.p.Start(); err != nil {
		t.Fatalf("testenv: proxy enable: %v", err)
	}
}

// AddToxic adds a toxic given as toxiproxy JSON, e.g.
// {"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":500}}.
func (p *Proxy) AddToxic(t testing.TB, json string) {
	t.Helper()
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(json)); err != nil {
		t.Fatalf("testenv: toxic: %v", err)
	}
}

// ProxyURL rewrites the host:port of a URL (amqp://, postgres://, mongodb://)
// to the proxy's address.
func ProxyURL(url, upstream, proxyAddr string) string {
	return strings.Replace(url, upstream, proxyAddr, 1)
}

// RemoveToxic removes a toxic by name.
func (p *Proxy) RemoveToxic(t testing.TB, name string) {
	t.Helper()
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("testenv: remove toxic: %v", err)
	}
}
