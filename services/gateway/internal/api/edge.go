package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/strata-bureau/strata/pkg/input"
)

// Limits on what the gateway forwards to a base.
const (
	maxBearer     = 8192
	maxBasic      = 1024
	maxGrantToken = 128
)

// Proxies are the networks whose connections may tell the client's address
// in X-Forwarded-For (GATEWAY_TRUSTED_PROXIES).
type Proxies []netip.Prefix

// ParseProxies reads a comma-separated list of CIDRs or addresses.
func ParseProxies(s string) (Proxies, error) {
	var out Proxies
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR", part)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler, so configuration
// (pkg/config) decodes GATEWAY_TRUSTED_PROXIES into Proxies.
func (p *Proxies) UnmarshalText(b []byte) error {
	v, err := ParseProxies(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

var errForwardedFor = errors.New("X-Forwarded-For is malformed")

// ClientIP is the client's address: the connection's peer, or — only when
// the peer is a trusted proxy — the nearest address in X-Forwarded-For
// that is not itself a trusted proxy (read right to left, so addresses a
// client wrote into the header itself are never believed).
func (p Proxies) ClientIP(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("peer address %q: %w", r.RemoteAddr, err)
	}
	peer = peer.Unmap()
	if len(p) == 0 || !p.trusted(peer) {
		return peer.String(), nil
	}
	vals := r.Header.Values("X-Forwarded-For")
	var hops []string
	for _, v := range vals {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		if len(hops[i]) > 64 {
			return "", errForwardedFor
		}
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return "", errForwardedFor
		}
		if !p.trusted(a) || i == 0 {
			return a.Unmap().String(), nil
		}
	}
	return peer.String(), nil
}

func malformedCredential(detail string) *Problem {
	return problem(http.StatusUnauthorized, "malformed-backend-credential", detail)
}

// isToken68 is RFC 9110's token68: the syntax of bearer tokens (RFC 6750)
// and basic credentials (RFC 7617).
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0 {
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// checkForwarded refuses, before any work, a header the gateway would pass
// to a base that no base could accept: an Authorization value outside the
// Bearer and Basic syntaxes (or holding control characters, which grpc-go
// would refuse locally), a grant token outside printable ASCII, repeated
// credentials. The handlers check which credential each call needs.
func checkForwarded(r *http.Request) *Problem {
	if v := r.Header.Values("Authorization"); len(v) > 0 {
		if len(v) > 1 {
			return malformedCredential("send one Authorization header")
		}
		if p := checkAuthorization(v[0]); p != nil {
			return p
		}
	}
	if v := r.Header.Values("X-Strata-Grant"); len(v) > 0 {
		if len(v) > 1 || v[0] == "" || input.Token(v[0], maxGrantToken, false) != nil {
			return malformedCredential(fmt.Sprintf("X-Strata-Grant must be one grant token of at most %d printable ASCII characters", maxGrantToken))
		}
	}
	return nil
}

func checkAuthorization(h string) *Problem {
	switch {
	case hasScheme(h, "Bearer"):
		if len(h) > maxBearer || !isToken68(h[len("Bearer "):]) {
			return malformedCredential(fmt.Sprintf("Authorization: Bearer must carry one token68 token (RFC 6750) of at most %d bytes", maxBearer))
		}
	case hasScheme(h, "Basic"):
		if len(h) > maxBasic || !isToken68(h[len("Basic "):]) {
			return malformedCredential("Authorization: Basic must carry base64(user:password) (RFC 7617)")
		}
		raw, err := base64.StdEncoding.DecodeString(h[len("Basic "):])
		user, pass, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || user == "" || input.Text(user, 256) != nil || input.Text(pass, 512) != nil {
			return malformedCredential("Authorization: Basic must carry base64(user:password), UTF-8 without control characters (RFC 7617)")
		}
	default:
		return malformedCredential("Authorization must use the Bearer or Basic scheme")
	}
	return nil
}

// checkText refuses free text no base should store: invalid UTF-8, NUL or
// other control characters, or more than maxBytes bytes.
func checkText(field, v string, maxBytes int) error {
	if err := input.Text(v, maxBytes); err != nil {
		return invalid(field + " " + err.Error())
	}
	return nil
}

// checkToken refuses an identifier outside printable ASCII.
func checkToken(field, v string, maxBytes int) error {
	if v == "" {
		return nil
	}
	if err := input.Token(v, maxBytes, false); err != nil {
		return invalid(field + " " + err.Error())
	}
	return nil
}
