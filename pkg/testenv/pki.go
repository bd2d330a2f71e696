package testenv

import (
	"testing"

	"google.golang.org/grpc"

	"github.com/strata-bureau/strata/pkg/grpcclient"
	"github.com/strata-bureau/strata/pkg/pki"
)

// CA is a private certificate authority for one test: it issues server
// and client certificates and dials services over mutual TLS.
type CA struct {
	t   testing.TB
	ca  *pki.CA
	dir string
}

// NewCA makes a fresh CA whose files live in a temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := pki.NewCA("strata test CA")
	if err != nil {
		t.Fatal(err)
	}
	return &CA{t: t, ca: ca, dir: t.TempDir()}
}

// Issue makes a certificate for identity, valid for hosts.
func (c *CA) Issue(identity string, hosts ...string) pki.Files {
	c.t.Helper()
	leaf, err := c.ca.Issue(identity, hosts...)
	if err != nil {
		c.t.Fatal(err)
	}
	f, err := c.ca.Write(c.dir, identity, leaf)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// Dial connects to addr as identity, verifying the server as serverName;
// the connection is closed when the test ends.
func (c *CA) Dial(addr, identity, serverName string) *grpc.ClientConn {
	c.t.Helper()
	return DialFiles(c.t, addr, c.Issue(identity), serverName)
}

// DialFiles connects to addr over mutual TLS with the certificate, key and
// trusted CA in f, verifying the server as serverName; the connection is
// closed when the test ends.
func DialFiles(t testing.TB, addr string, f pki.Files, serverName string) *grpc.ClientConn {
	t.Helper()
	tlsCfg, err := pki.ClientConfig(f, serverName)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpcclient.New(addr, grpcclient.Options{TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
