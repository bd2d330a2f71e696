package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestForwardedHeadersAreCheckedAtTheEdge(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, header, value string
		ok                  bool
	}{
		{"bearer", "Authorization", "Bearer eyJhbGciOi.eyJzdWIi.sig-_~+/==", true},
		{"basic", "Authorization", "Basic ZGVtbzpzM2NyZXQ=", true},
		{"basic utf-8", "Authorization", "Basic am/Do286c2VuaGE=", true}, // joão:senha
		{"control character", "Authorization", "Bearer a\x01b", false},
		{"DEL", "Authorization", "Bearer a\x7fb", false},
		{"two spaces", "Authorization", "Bearer  abc", false},
		{"other scheme", "Authorization", "Digest abc", false},
		{"basic not base64", "Authorization", "Basic !!!", false},
		{"basic without colon", "Authorization", "Basic ZGVtbw==", false},
		{"basic with NUL", "Authorization", "Basic ZGVtbzpzMwBjcmV0", false}, // demo:s3\x00cret
		{"basic invalid UTF-8", "Authorization", "Basic ZGVtbzr/", false},
		{"grant", "X-Strata-Grant", "sgt_abcDEF123-_", true},
		{"grant with control", "X-Strata-Grant", "sgt_\x01", false},
		{"grant non-ASCII", "X-Strata-Grant", "sgt_é", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/v1/x", nil)
		r.Header[c.header] = []string{c.value}
		p := checkForwarded(r)
		if (p == nil) != c.ok {
			t.Errorf("%s: %q accepted=%v", c.name, c.value, p == nil)
		}
		if p != nil && p.Status != http.StatusUnauthorized {
			t.Errorf("%s: status %d", c.name, p.Status)
		}
	}
	r := httptest.NewRequest("GET", "/v1/x", nil)
	r.Header["Authorization"] = []string{"Bearer a", "Bearer b"}
	if checkForwarded(r) == nil {
		t.Error("two Authorization headers accepted")
	}
}

func TestClientIPTrustsOnlyConfiguredProxies(t *testing.T) {
	t.Parallel()
	proxies, err := ParseProxies("10.0.0.0/8, 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseProxies("10.0.0.0/33"); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
	cases := []struct {
		name, peer, xff, want string
		bad                   bool
	}{
		{"direct, header ignored", "203.0.113.7:5000", "1.2.3.4", "203.0.113.7", false},
		{"trusted proxy", "10.1.2.3:5000", "198.51.100.9", "198.51.100.9", false},
		{"client-written hops are not believed", "10.1.2.3:5000", "6.6.6.6, 198.51.100.9", "198.51.100.9", false},
		{"chain of trusted proxies", "192.0.2.1:5000", "198.51.100.9, 10.9.9.9", "198.51.100.9", false},
		{"trusted proxy without header", "10.1.2.3:5000", "", "10.1.2.3", false},
		{"garbage from a trusted proxy", "10.1.2.3:5000", "not-an-ip", "", true},
		{"IPv6 peer", "[2001:db8::1]:5000", "", "2001:db8::1", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/v1/x", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		got, err := proxies.ClientIP(r)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
	// Without trusted proxies the header never counts.
	r := httptest.NewRequest("GET", "/v1/x", nil)
	r.RemoteAddr, r.Header["X-Forwarded-For"] = "203.0.113.7:1", []string{"1.2.3.4"}
	if got, _ := Proxies(nil).ClientIP(r); got != "203.0.113.7" {
		t.Fatalf("no proxies configured: %s", got)
	}
}
